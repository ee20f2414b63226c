package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-mesh/sluice/internal/remoteexec"
	"github.com/sluice-mesh/sluice/internal/sandbox"
)

// execInside is `sluice-sandbox exec -- CMD ARGS`: the running sandbox starts CMD inside its
// network namespace, where the pod IPs and the operator are, with this process's standard streams,
// directory and environment, and GRPC_XDS_BOOTSTRAP naming the sandbox's grpc-bootstrap.json (the
// operator's address and the users' identity). It returns CMD's exit code.
func execInside(stateDir string, args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: sluice-sandbox [-state DIR] exec -- COMMAND [ARG...]")
		return 2
	}
	env := append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+filepath.Join(stateDir, "grpc-bootstrap.json"))
	code, err := remoteexec.Run(sandbox.ExecSocket(stateDir), remoteexec.Command{Args: args, Env: env})
	if errors.Is(err, remoteexec.ErrNoServer) {
		err = fmt.Errorf("no sandbox runs with its state in %s: start one with make sandbox-up (%w)", stateDir, err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-sandbox exec:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
