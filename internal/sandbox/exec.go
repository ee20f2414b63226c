package sandbox

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/sluice-mesh/sluice/internal/remoteexec"
)

// ExecSocket is the Unix socket in stateDir on which a running sandbox starts programs inside its
// network namespace for `sluice-sandbox exec` (internal/remoteexec): they are the sandbox's
// children, so they reach the pod IPs and the operator, and they stop with it.
func ExecSocket(stateDir string) string { return filepath.Join(stateDir, "exec.sock") }

// serveExec listens on ExecSocket. Without it the sandbox still works: only exec does not.
func (s *Sandbox) serveExec() {
	var err error
	if s.execs, err = remoteexec.Listen(ExecSocket(s.opts.StateDir)); err != nil {
		fmt.Fprintf(s.opts.Log, "  sluice-sandbox exec will not work: %v\n", err)
	}
}

// stopExecs ends the programs exec started that still run.
func (s *Sandbox) stopExecs() {
	if s.execs != nil {
		s.execs.Close(5 * time.Second)
	}
}
