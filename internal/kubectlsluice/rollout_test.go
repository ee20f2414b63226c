package kubectlsluice_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
)

// checkoutRun is a run at its second step with analysis evidence, two Deployments and events.
func checkoutRun(t *testing.T, ns string) *meshv1alpha1.Rollout {
	t.Helper()
	deployment(t, ns, "checkout", "checkout", 3, 2, "7d9f8c6b5")
	deployment(t, ns, "checkout-primary", "checkout", 3, 3, "")
	service(t, ns, "checkout", "checkout", 8080)
	analysis := &meshv1alpha1.Analysis{
		Interval: &metav1.Duration{Duration: time.Minute}, FailureLimit: 2,
		Metrics: []meshv1alpha1.AnalysisMetric{
			{Name: "success-rate", Template: meshv1alpha1.MetricRequestSuccessRate, ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr.To(99.0)}},
			{Name: "latency", Template: meshv1alpha1.MetricRequestDuration, ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(500.0)}},
		},
	}
	ro := rollout(t, ns, "checkout", "checkout", analysis, meshv1alpha1.RolloutStatus{
		Phase: meshv1alpha1.RolloutProgressing, CanaryWeight: 10, CurrentStepIndex: ptr.To[int32](1),
		StableRevision: "6b7c9d5f4", CanaryRevision: "7d9f8c6b5", Message: "pausing 5m0s at 10% while the analysis runs",
		StepStartedAt: ago(2 * time.Minute), WeightProgrammedAt: ago(5 * time.Minute), RunStartedAt: ago(6 * time.Minute),
		Analysis: &meshv1alpha1.RolloutAnalysisStatus{
			NextCheckAt: &metav1.Time{Time: now.Add(20 * time.Second)}, LastCheckAt: ago(40 * time.Second), LastVerdict: "Pass",
			PassedChecks: 4, FailedChecks: 1,
			Metrics: []meshv1alpha1.MetricEvidence{
				{Name: "success-rate", Threshold: "min 99", Results: []meshv1alpha1.MetricEvidenceResult{
					{Time: *ago(100 * time.Second), Verdict: "Fail", Value: "97.1234", Requests: ptr.To[int64](210)},
					{Time: *ago(40 * time.Second), Verdict: "Pass", Value: "99.6875", Requests: ptr.To[int64](320)},
				}},
				{Name: "latency", Threshold: "max 500", Results: []meshv1alpha1.MetricEvidenceResult{
					{Time: *ago(40 * time.Second), Verdict: "Pass", Value: "212.5"},
				}},
			},
		},
	}, setWeight(10), pauseFor(5*time.Minute), setWeight(50), meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{}})
	event(t, ro, 6*time.Minute, "Normal", "RunStarted", "revision 7d9f8c6b5 started its run at step 0")
	event(t, ro, 5*time.Minute, "Normal", "WeightChanged", "canary weight 0% -> 10%")
	event(t, ro, 100*time.Second, "Warning", "CheckFailed", "success-rate 97.12 is below min 99")
	return ro
}

func TestGetRolloutDrawsTheTree(t *testing.T) {
	ns := namespace(t, "get-tree")
	checkoutRun(t, ns)
	r := plugin(t, "get", "rollout", "checkout", "-n", ns)
	must(t, r.err)
	checkGolden(t, "get_rollout.txt", r.out)

	r = plugin(t, "get", "rollout", "checkout", "-n", ns, "-o", "yaml")
	must(t, r.err)
	checkGolden(t, "get_rollout.yaml", r.out)

	if r := plugin(t, "get", "rollout", "nope", "-n", ns); r.err == nil || !strings.Contains(r.err.Error(), `rollout "nope" not found in namespace "get-tree"`) {
		t.Errorf("a missing rollout: %v, want an error naming it and the namespace", r.err)
	}
	if r := plugin(t, "get", "rollout", "checkout", "-n", ns, "-o", "wide"); r.err == nil || !strings.Contains(r.err.Error(), "use json or yaml") {
		t.Errorf("-o wide: %v, want an error naming the formats", r.err)
	}
}

// Off a terminal, --watch prints a new drawing when the Rollout changes, and only then.
func TestGetRolloutWatchPrintsChanges(t *testing.T) {
	ns := namespace(t, "get-watch")
	ro := checkoutRun(t, ns)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- pluginCtx(ctx, kubectlsluice.Options{Poll: 200 * time.Millisecond}, "get", "rollout", "checkout", "-n", ns, "--watch")
	}()
	time.Sleep(500 * time.Millisecond)
	ro.Status.CanaryWeight, ro.Status.Phase, ro.Status.CurrentStepIndex = 50, meshv1alpha1.RolloutPaused, ptr.To[int32](3)
	must(t, k8s.Status().Update(t.Context(), ro))
	r := <-done
	must(t, r.err)
	drawings := strings.Split(r.out, "\n\nRollout ")
	if len(drawings) != 2 || !strings.Contains(drawings[0], "Progressing  canary weight 10%") || !strings.Contains(drawings[1], "Paused  canary weight 50%  step 4/4") {
		t.Errorf("--watch printed %d drawings, want the first and the changed one:\n%s", len(drawings), r.out)
	}
}
