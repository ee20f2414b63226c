package kubectlsluice_test

import (
	"strings"
	"testing"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Each request command sets its annotation to the time, as the Rollout controller reads them
// (controllers/rollout.RequestsFromAnnotations).
func TestRequestsAnnotateTheRollout(t *testing.T) {
	ns := namespace(t, "requests")
	rollout(t, ns, "web", "web", nil, meshv1alpha1.RolloutStatus{}, setWeight(20))
	var out strings.Builder
	for _, args := range [][]string{{"promote"}, {"promote", "--full"}, {"abort"}, {"retry"}, {"pause"}, {"resume"}} {
		r := plugin(t, append(args, "web", "-n", ns)...)
		must(t, r.err)
		out.WriteString(r.out)
	}
	checkGolden(t, "requests.txt", out.String())
	want := now.Format(time.RFC3339Nano)
	got := getRollout(t, ns, "web").Annotations
	for _, kind := range []string{"promote", "promote-full", "abort", "retry", "pause", "resume"} {
		if got["rollout.sluice.dev/"+kind] != want {
			t.Errorf("annotation rollout.sluice.dev/%s = %q, want %q", kind, got["rollout.sluice.dev/"+kind], want)
		}
	}
	if r := plugin(t, "promote", "nope", "-n", ns); r.err == nil || !strings.Contains(r.err.Error(), "not found") {
		t.Errorf("promote of a missing rollout: %v, want not found", r.err)
	}
}

func TestVersion(t *testing.T) {
	r := plugin(t, "version")
	must(t, r.err)
	if r.out != "kubectl-sluice dev\n" {
		t.Errorf("version printed %q", r.out)
	}
}
