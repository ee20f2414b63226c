// Command sluice-sandbox runs the local sandbox: a real Kubernetes API server with the Sluice
// operator, cert-manager, Prometheus, and the demo app's pods as local processes, in a
// network namespace of its own (no Docker, no cluster, no root).
//
//	sluice-sandbox demo   # the story: a canary promoted, a bad one rolled back; exit 0 if both happened
//	sluice-sandbox run    # the sandbox in the foreground until Ctrl-C
//	sluice-sandbox up     # the same in the background; returns once it is ready
//	sluice-sandbox down   # stops the background sandbox
//	sluice-sandbox exec -- CMD ARGS   # runs CMD inside the running sandbox, as a client of the mesh
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"

	"github.com/sluice-mesh/sluice/internal/podnet"
	"github.com/sluice-mesh/sluice/internal/sandbox"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/internal/testprom"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

func main() {
	state := flag.String("state", ".sandbox", "directory for the sandbox's kubeconfig, bootstrap, logs and pid")
	demoApp := flag.String("demoapp", "", "the demoapp binary (default: demoapp beside this program)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: sluice-sandbox [-state DIR] [-demoapp PATH] demo|run|up|down|exec -- CMD [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	stateDir, err := filepath.Abs(*state)
	if err == nil && flag.Arg(0) == "exec" {
		os.Exit(execInside(stateDir, flag.Args()[1:]))
	}
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err == nil && *demoApp == "" {
		*demoApp, err = besideMe("demoapp")
	}
	if err != nil {
		fail(err)
	}
	switch flag.Arg(0) {
	case "demo":
		os.Exit(runDemo(stateDir, *demoApp))
	case "run":
		err = runForeground(stateDir, *demoApp)
	case "up":
		err = up(stateDir, *demoApp)
	case "down":
		err = down(stateDir)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sluice-sandbox:", err)
	os.Exit(1)
}

func besideMe(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(self), name), nil
}

// enter resolves the tools (which may be built, needing the network), then moves into the
// sandbox's own network namespace, with host listeners on hostAddrs.
func enter(stateDir string, hostAddrs ...string) error {
	prepare := func() error {
		for _, tool := range []struct {
			env  string
			path func() (string, error)
		}{
			{"KUBEBUILDER_ASSETS", testenv.Assets},
			{"PROMETHEUS_BINARY", testprom.Binary},
			{"KWOK_BINARY", testcluster.KwokBinary},
			{"CERT_MANAGER_DIR", testcertmanager.Dir},
		} {
			p, err := tool.path()
			if err != nil {
				return err
			}
			if err := os.Setenv(tool.env, p); err != nil {
				return err
			}
		}
		// grpc-go reads its bootstrap when it starts.
		return os.Setenv("GRPC_XDS_BOOTSTRAP_CONFIG", string(usersBootstrap(stateDir)))
	}
	err := podnet.EnterListeningAfter(prepare, hostAddrs...)
	if errors.Is(err, podnet.ErrUnavailable) {
		return fmt.Errorf("the sandbox gives every pod its own IP in a network namespace of its own: %w", err)
	}
	return err
}

// usersBootstrap is the gRPC bootstrap of the demo's users, and of the programs exec runs (as
// grpc-bootstrap.json): they present the loadgen identity (written to these files before they
// call) to the operator's xDS server and to the greeter.
func usersBootstrap(stateDir string) []byte {
	files := loadgenFiles(stateDir)
	return testmesh.Bootstrap(sandbox.XDSAddr, envoy.NodeID(envoy.FlavourGRPC, "127.0.0.1", loadgenName, demoNamespace),
		testmesh.WithCertificates(files), testmesh.WithMutualTLS(files, demoNamespace, loadgenName))
}

// runForeground runs the sandbox until SIGINT or SIGTERM.
func runForeground(stateDir, demoApp string) error {
	if err := enter(stateDir, "127.0.0.1:0"); err != nil {
		return err
	}
	hosts, err := podnet.HostListeners()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("Starting the sandbox:")
	sb, err := sandbox.Start(ctx, sandbox.Options{StateDir: stateDir, DemoApp: demoApp, APIServerListener: hosts[0], Log: os.Stdout,
		ClientBootstrap: usersBootstrap(stateDir)})
	if err != nil {
		return err
	}
	defer sb.Stop()
	// The demo's starting point: greeter v1 under a Rollout, with users calling it.
	d := &demo{ui: newUI(), c: sb.Client, sb: sb, stateDir: stateDir}
	if err := d.deploy(ctx); err != nil {
		return err
	}
	if _, err := d.follow(ctx, "v1 to become stable", time.Minute, func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPromoted
	}); err != nil {
		return err
	}
	if err := d.startUsers(ctx); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stateDir, "ready"), nil, 0o644); err != nil {
		return err
	}
	defer func() { _ = os.Remove(filepath.Join(stateDir, "ready")) }()
	fmt.Printf(`
The sandbox is ready: greeter v1 runs in namespace demo under a Rollout and a STRICT ZeroTrust,
and %d calls a second reach it over mutual TLS.
  export KUBECONFIG=%s
  kubectl get sluice,deploy,pods -A
  kubectl -n demo set env deployment/greeter VERSION=v2             # a healthy canary: watch it step up
  kubectl -n demo set env deployment/greeter VERSION=v3 ERROR_PERCENT=30   # a bad one: watch it roll back
  kubectl -n demo get rollout greeter -w
Your own proxyless gRPC client runs inside it, calling as the users do:
  bin/sluice-sandbox exec -- bin/demoapp call -n 3 xds:///%s
Ctrl-C stops it.
`, callsPerSec, sb.Kubeconfig(), demoTarget)
	<-ctx.Done()
	fmt.Println("\nStopping the sandbox…")
	return nil
}
