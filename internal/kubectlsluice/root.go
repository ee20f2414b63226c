// Package kubectlsluice is the kubectl plugin `kubectl sluice`: it draws a Rollout, waits for its
// outcome, sends it requests (promote, abort, ...), shows what every proxy was sent by the operator's
// xDS server, and lints Sluice objects against the cluster. cmd/kubectl-sluice is its main.
package kubectlsluice

import (
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// Streams are the command's standard streams.
type Streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Options are what the commands take from their surroundings; tests replace them.
type Options struct {
	// Streams are stdin, stdout and stderr.
	Streams Streams
	// Clock gives the time relative ages are drawn from and paces the waits; nil is the real clock.
	Clock clock.WithTicker
	// Terminal says whether stdout is a terminal (colours, redraw in place); nil detects it.
	Terminal *bool
	// Poll is how often status and get --watch look again; 0 means a second.
	Poll time.Duration
}

// env is what every command shares: the kubectl flags and the clients built from them.
type env struct {
	Options
	flags *kubeFlags
}

// NewCommand builds `kubectl sluice` with its subcommands.
func NewCommand(o Options) *cobra.Command {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	e := &env{Options: o, flags: newKubeFlags()}
	root := &cobra.Command{
		Use:   "kubectl-sluice",
		Short: "Watch and steer Sluice Rollouts, see what every proxy was sent, lint Sluice objects",
		Long: "kubectl sluice works on the Sluice service mesh (mesh.sluice.dev) of the cluster of your kubeconfig.\n" +
			"Exit codes of `status`: 0 promoted, 2 rolled back by its analysis, 3 aborted by a user,\n" +
			"4 failed (configuration), 5 timed out; 1 is any other error.",
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	root.SetIn(o.Streams.In)
	root.SetOut(o.Streams.Out)
	root.SetErr(o.Streams.ErrOut)
	e.flags.add(root.PersistentFlags())
	root.AddCommand(
		e.getCommand(),
		e.statusCommand(),
		e.proxyStatusCommand(),
		e.proxyConfigCommand(),
		e.analyzeCommand(),
		versionCommand(),
	)
	for _, r := range requestCommands {
		root.AddCommand(e.requestCommand(r))
	}
	return root
}

// restConfig is the kubeconfig's, with the plugin's user agent.
func (e *env) restConfig() (*rest.Config, error) {
	cfg, err := e.flags.restConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-sluice/" + Version
	// --watch and status read a Rollout, its Deployments and events every poll: above client-go's
	// default of 5 requests a second.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, nil
}

// kube builds the clients from the kubectl flags.
func (e *env) kube() (*kube, error) {
	cfg, err := e.restConfig()
	if err != nil {
		return nil, err
	}
	return newKube(cfg)
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (e *env) namespace() (string, error) {
	return e.flags.namespace()
}

// terminal reports whether stdout is a terminal that takes colours and cursor moves.
func (e *env) terminal() bool {
	if e.Terminal != nil {
		return *e.Terminal
	}
	f, ok := e.Streams.Out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// color reports whether to paint: on a terminal, unless NO_COLOR is set.
func (e *env) color() bool { return e.terminal() && os.Getenv("NO_COLOR") == "" }

func (e *env) out() io.Writer { return e.Streams.Out }
