package kubectlsluice_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
)

// status exits with the code of each outcome of the Deployment's current revision; a terminal phase
// about another revision is an earlier release, so status keeps waiting (here until its timeout).
func TestStatusExitCodes(t *testing.T) {
	ns := namespace(t, "status")
	const current, older = "7d9f8c6b5", "6b7c9d5f4"
	cases := []struct {
		name   string
		status meshv1alpha1.RolloutStatus
		want   int
	}{
		{"promoted", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutPromoted, StableRevision: current, CanaryRevision: current, Message: "revision 7d9f8c6b5 is stable"}, kubectlsluice.ExitPromoted},
		{"rolled-back", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutRolledBack, AbortReason: "AnalysisFailed", StableRevision: older, CanaryRevision: current}, kubectlsluice.ExitRolledBack},
		{"analysis-errors", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutRolledBack, AbortReason: "AnalysisErrors", StableRevision: older, CanaryRevision: current}, kubectlsluice.ExitRolledBack},
		{"aborted", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutRolledBack, AbortReason: "AbortedByUser", StableRevision: older, CanaryRevision: current}, kubectlsluice.ExitAborted},
		{"failed", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutFailed, FailureReason: "InvalidSpec", Message: "spec.service.port: no port 8080"}, kubectlsluice.ExitFailed},
		{"progressing", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutProgressing, CanaryWeight: 20, CurrentStepIndex: ptr.To[int32](0), StableRevision: older, CanaryRevision: current}, kubectlsluice.ExitTimeout},
		{"promoted-earlier", meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutPromoted, StableRevision: older, CanaryRevision: older}, kubectlsluice.ExitTimeout},
	}
	var out strings.Builder
	for _, c := range cases {
		deployment(t, ns, c.name, c.name, 2, 2, current)
		rollout(t, ns, c.name, c.name, nil, c.status, setWeight(20), pauseFor(time.Minute))
		r := plugin(t, "status", c.name, "-n", ns, "--timeout", "500ms")
		if got := r.code(); got != c.want {
			t.Errorf("%s: exit code %d (%v), want %d", c.name, got, r.err, c.want)
		}
		errText := ""
		if r.err != nil {
			errText = r.err.Error()
		}
		out.WriteString("$ kubectl sluice status " + c.name + "\n" + r.out + "error: " + errText + "\n\n")
	}
	checkGolden(t, "status.txt", out.String())
}

// status follows a run to its end, printing each change.
func TestStatusWaitsForTheOutcome(t *testing.T) {
	ns := namespace(t, "status-wait")
	deployment(t, ns, "web", "web", 2, 2, "7d9f8c6b5")
	ro := rollout(t, ns, "web", "web", nil, meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutProgressing, CanaryWeight: 20,
		CurrentStepIndex: ptr.To[int32](0), StableRevision: "6b7c9d5f4", CanaryRevision: "7d9f8c6b5"}, setWeight(20), pauseFor(time.Minute))
	done := make(chan result, 1)
	go func() { done <- plugin(t, "status", "web", "-n", ns, "--timeout", "30s") }()
	time.Sleep(300 * time.Millisecond)
	ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.CanaryWeight = meshv1alpha1.RolloutPromoting, ptr.To[int32](2), 100
	must(t, k8s.Status().Update(t.Context(), ro))
	time.Sleep(300 * time.Millisecond)
	ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.StableRevision = meshv1alpha1.RolloutPromoted, 0, "7d9f8c6b5"
	must(t, k8s.Status().Update(t.Context(), ro))
	r := <-done
	if r.code() != kubectlsluice.ExitPromoted {
		t.Fatalf("exit code %d (%v), want 0", r.code(), r.err)
	}
	want := "Progressing  step 1/2  canary 20%\nPromoting  canary 100%\nPromoted  canary 0%\n"
	if r.out != want {
		t.Errorf("status printed\n%s\nwant\n%s", r.out, want)
	}
}
