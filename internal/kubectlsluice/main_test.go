package kubectlsluice_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/golden"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The commands run against a real API server (internal/testenv) holding the objects each test
// creates; the clock is fixed and there is no colour, so their output is golden.
var (
	env *testenv.Env
	k8s client.Client
	// now is the plugin's clock in every test.
	now = time.Date(2026, 12, 1, 10, 10, 0, 0, time.UTC)
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the kubectl plugin's tests against the API server in -short mode")
		return
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	return m.Run()
}

// result is what one run of the plugin did.
type result struct {
	out, errOut string
	err         error
}

// code is the process's exit code for the result, as cmd/kubectl-sluice computes it.
func (r result) code() int {
	if r.err == nil {
		return 0
	}
	var exit *kubectlsluice.ExitError
	if errors.As(r.err, &exit) {
		return exit.Code
	}
	return kubectlsluice.ExitOtherError
}

// fixedClock tells the time as now, and ticks and times out in real time.
type fixedClock struct{ clock.RealClock }

func (fixedClock) Now() time.Time                  { return now }
func (fixedClock) Since(t time.Time) time.Duration { return now.Sub(t) }

// plugin runs `kubectl sluice args...` against the test API server with the fixed clock.
func plugin(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return pluginCtx(ctx, kubectlsluice.Options{Poll: 50 * time.Millisecond}, args...)
}

// pluginCtx is plugin with options, until ctx ends.
func pluginCtx(ctx context.Context, o kubectlsluice.Options, args ...string) result {
	o.Clock = fixedClock{}
	var out, errOut bytes.Buffer
	o.Streams = kubectlsluice.Streams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut}
	notTerminal := false
	o.Terminal = &notTerminal
	cmd := kubectlsluice.NewCommand(o)
	cmd.SetArgs(append([]string{"--kubeconfig", env.KubeconfigPath}, args...))
	err := cmd.ExecuteContext(ctx)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

// volatile are the parts of an object the API server makes up: they differ on every run.
var volatile = regexp.MustCompile(`(?m)^(\s*)(uid|resourceVersion|creationTimestamp): .*$`)

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(volatile.ReplaceAllString(got, "$1$2: <volatile>")))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
