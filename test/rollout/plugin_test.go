package rollout_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
)

// kubectlSluice runs the kubectl plugin against the test API server and returns its output and
// exit code.
func kubectlSluice(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := kubectlsluice.NewCommand(kubectlsluice.Options{Streams: kubectlsluice.Streams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut}})
	cmd.SetArgs(append([]string{"--kubeconfig", env.KubeconfigPath}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	var exit *kubectlsluice.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.Code
	}
	t.Fatalf("kubectl sluice %v: %v", args, err)
	return "", 0
}

// The plugin's requests steer a real run: promote finishes a pause, promote --full skips the
// remaining steps, abort rolls the next release back; status exits 0 and then 3 (aborted).
func TestPluginPromotesAndAbortsARealRun(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "plugin")
	h := setUp(t, ns, nil, setWeight(30), pauseUntilPromoted(), setWeight(60), pauseUntilPromoted())
	startLoad(t, newClient(t, ns, "checkout"), 20*time.Millisecond)

	release(t, ns, "checkout", "v2", 0)
	pausedAt := func(step, weight int32) func(*meshv1alpha1.Rollout) bool {
		return func(ro *meshv1alpha1.Rollout) bool {
			return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(step, weight)(ro)
		}
	}
	waitRollout(t, ns, "checkout", time.Minute, "paused at 30 %", pausedAt(1, 30))
	if _, code := kubectlSluice(t, "promote", "checkout", "-n", ns); code != 0 {
		t.Fatalf("promote exited %d", code)
	}
	waitRollout(t, ns, "checkout", time.Minute, "paused at 60 % after promote", pausedAt(3, 60))
	if _, code := kubectlSluice(t, "promote", "--full", "checkout", "-n", ns); code != 0 {
		t.Fatalf("promote --full exited %d", code)
	}
	out, code := kubectlSluice(t, "status", "checkout", "-n", ns, "--timeout", "2m")
	if code != kubectlsluice.ExitPromoted {
		t.Fatalf("status after promote --full exited %d:\n%s", code, out)
	}
	if ro := getRollout(t, ns, "checkout"); !promotedOtherThan(h.v1)(ro) {
		t.Fatalf("status exited 0 but the Rollout is %s with stable %s", ro.Status.Phase, ro.Status.StableRevision)
	}
	allOn(t, ns, "v2")

	release(t, ns, "checkout", "v3", 0)
	waitRollout(t, ns, "checkout", time.Minute, "v3 paused at 30 %", pausedAt(1, 30))
	if _, code := kubectlSluice(t, "abort", "checkout", "-n", ns); code != 0 {
		t.Fatalf("abort exited %d", code)
	}
	out, code = kubectlSluice(t, "status", "checkout", "-n", ns, "--timeout", "2m")
	if code != kubectlsluice.ExitAborted {
		t.Fatalf("status after abort exited %d, want %d:\n%s", code, kubectlsluice.ExitAborted, out)
	}
	if ro := getRollout(t, ns, "checkout"); ro.Status.AbortReason != "AbortedByUser" || ro.Status.CanaryWeight != 0 {
		t.Errorf("after abort: reason %q weight %d", ro.Status.AbortReason, ro.Status.CanaryWeight)
	}
	allOn(t, ns, "v2")
}
