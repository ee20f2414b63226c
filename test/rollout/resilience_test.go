package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
)

// The operator restarted while the canary holds 30 % resumes at 30 %: the state lives in the
// Rollout's status, and the new operator neither starts over (0 %) nor jumps ahead (100 %).
// Not parallel: it stops the operator every test shares.
func TestOperatorRestartResumesAtTheSameWeight(t *testing.T) {
	ns := namespace(t, "restart")
	h := setUp(t, ns, analysisSpec(interval, 1, 95, ""), setWeight(30), pauseUntilPromoted(), setWeight(70))
	c := newClient(t, ns, "checkout")
	startLoad(t, c, 10*time.Millisecond)
	release(t, ns, "checkout", "v2", 0)
	waitRollout(t, ns, "checkout", time.Minute, "paused at 30 %", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(1, 30)(ro)
	})

	restartedAt := time.Now()
	restartOperator(t)
	time.Sleep(3 * interval) // the new operator runs checks and reconciles meanwhile
	if s, moved := h.first(restartedAt, func(s snapshot) bool { return s.weight != 30 || s.step != 1 }); moved {
		t.Fatalf("after the restart the Rollout moved: %s", s)
	}
	counts := split(t, c, 400)
	if s := share(counts, "v2"); s < 22 || s > 38 {
		t.Errorf("after the restart the canary got %.1f%% of 400 calls, want 30 %%: %v", s, counts)
	}

	request(t, ns, "checkout", "promote")
	waitRollout(t, ns, "checkout", 2*time.Minute, "Promoted", promotedOtherThan(h.v1))
	allOn(t, ns, "v2")
}

// Prometheus stopped mid-run: its checks are inconclusive, so the run holds past the end of its
// pause, never promotes, and says why; when Prometheus is back the run goes on and is promoted.
// (MaxConsecutiveErrors errors in a row would abort the run; this outage is shorter.)
func TestPrometheusOutageHoldsTheRun(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "promdown")
	// A Prometheus of this test's own, so that stopping it disturbs no other test.
	prom := startPrometheus(t, ns)
	const pause = 5 * time.Second
	h := setUp(t, ns, analysisSpec(interval, 1, 95, prom.URL()), setWeight(20), pauseFor(pause), setWeight(50))
	startLoad(t, newClient(t, ns, "checkout"), 10*time.Millisecond)

	release(t, ns, "checkout", "v2", 0)
	waitRollout(t, ns, "checkout", time.Minute, "in its pause at 20 %", atStep(1, 20))
	if err := prom.Interrupt(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	ro := waitRollout(t, ns, "checkout", 4*interval+pause, "holding on query errors", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Analysis != nil && ro.Status.Analysis.ConsecutiveErrors >= 3
	})
	if !atStep(1, 20)(ro) || ro.Status.Phase != meshv1alpha1.RolloutProgressing {
		t.Fatalf("with Prometheus down the run went on: %s step %v weight %d", ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.CanaryWeight)
	}
	if end := ro.Status.StepStartedAt.Add(pause); time.Now().Before(end) {
		t.Fatalf("the pause (until %s) is not over yet; the test proves nothing", end.Format(time.RFC3339))
	}
	why := condition(ro, "Progressing") + " " + ro.Status.Message
	if !strings.Contains(why, "inconclusive") {
		t.Errorf("nothing says why the run waits: %s", why)
	}
	last := ro.Status.Analysis.Metrics[0].Results
	t.Logf("while Prometheus is down: %s; last evidence %+v", why, last[len(last)-1])

	must(t, prom.Restart(context.Background()))
	t.Logf("Prometheus was down for %s", time.Since(stoppedAt).Round(100*time.Millisecond))
	ro = waitRollout(t, ns, "checkout", 2*time.Minute, "Promoted", promotedOtherThan(h.v1))
	if ro.Status.Analysis != nil && ro.Status.Analysis.FailedChecks != 0 {
		t.Errorf("the outage counted as %d failed checks", ro.Status.Analysis.FailedChecks)
	}
}

// Prometheus gone for good: after MaxConsecutiveErrors checks in a row that could not be
// evaluated, the run is aborted to stable (fail safe), and the Aborted condition says why.
func TestPrometheusGoneAbortsTheRun(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "promgone")
	prom := startPrometheus(t, ns)
	setUp(t, ns, analysisSpec(interval, 1, 95, prom.URL()), setWeight(20), pauseUntilPromoted())
	startLoad(t, newClient(t, ns, "checkout"), 10*time.Millisecond)

	release(t, ns, "checkout", "v2", 0)
	waitRollout(t, ns, "checkout", time.Minute, "at 20 %", func(ro *meshv1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 20 })
	must(t, prom.Interrupt())
	ro := waitRollout(t, ns, "checkout", (rollout.MaxConsecutiveErrors+2)*interval+2*time.Second, "RolledBack",
		inPhase(meshv1alpha1.RolloutRolledBack))
	if ro.Status.AbortReason != "AnalysisErrors" || ro.Status.CanaryWeight != 0 {
		t.Errorf("aborted with reason %q weight %d, want AnalysisErrors and 0", ro.Status.AbortReason, ro.Status.CanaryWeight)
	}
	if c := condition(ro, "Aborted"); !strings.HasPrefix(c, "True/AnalysisErrors") || !strings.Contains(c, "could not be evaluated") {
		t.Errorf("Aborted is %s", c)
	}
	allOn(t, ns, "v1")
}
