package controllers

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/repo"
)

func TestRolloutMetricsFollowTheStatus(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewRolloutMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ro := &meshv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
		Spec:       meshv1alpha1.RolloutSpec{Analysis: &meshv1alpha1.Analysis{FailureLimit: 2}},
		Status: meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutProgressing, CanaryWeight: 20, CurrentStepIndex: ptr.To[int32](1),
			Analysis: &meshv1alpha1.RolloutAnalysisStatus{PassedChecks: 3, FailedChecks: 1, Metrics: []meshv1alpha1.MetricEvidence{
				{Name: "success-rate", Results: []meshv1alpha1.MetricEvidenceResult{{Verdict: "Fail", Value: "97"}, {Verdict: "Pass", Value: "99.5"}}},
			}}},
	}
	m.observe(ro)
	want := `
# HELP sluice_rollout_canary_weight Percentage of the Service's traffic the canary receives.
# TYPE sluice_rollout_canary_weight gauge
sluice_rollout_canary_weight{name="checkout",namespace="shop"} 20
# HELP sluice_rollout_analysis_value The latest value of each analysis metric (NaN when it had none).
# TYPE sluice_rollout_analysis_value gauge
sluice_rollout_analysis_value{metric="success-rate",name="checkout",namespace="shop"} 99.5
# HELP sluice_rollout_analysis_failures_left Failed checks the current run still tolerates before it rolls back.
# TYPE sluice_rollout_analysis_failures_left gauge
sluice_rollout_analysis_failures_left{name="checkout",namespace="shop"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_rollout_canary_weight",
		"sluice_rollout_analysis_value", "sluice_rollout_analysis_failures_left"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.phase.WithLabelValues("shop", "checkout", "Progressing")); got != 1 {
		t.Errorf("phase Progressing = %v, want 1", got)
	}
	ro.Status.Phase = meshv1alpha1.RolloutPromoted
	m.observe(ro)
	if got := testutil.ToFloat64(m.phase.WithLabelValues("shop", "checkout", "Progressing")); got != 0 {
		t.Errorf("phase Progressing after the promotion = %v, want 0", got)
	}
	m.forget("shop", "checkout")
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after forget: %d series (%v), want none", n, err)
	}
}

// Every sluice_rollout_* series the Grafana dashboard queries is one the controller exports.
func TestDashboardQueriesExportedRolloutMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "grafana", "sluice-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewRolloutMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.observe(&meshv1alpha1.Rollout{
		Spec: meshv1alpha1.RolloutSpec{Analysis: &meshv1alpha1.Analysis{}},
		Status: meshv1alpha1.RolloutStatus{CurrentStepIndex: ptr.To[int32](0), Analysis: &meshv1alpha1.RolloutAnalysisStatus{
			Metrics: []meshv1alpha1.MetricEvidence{{Name: "m", Results: []meshv1alpha1.MetricEvidenceResult{{Value: "1"}}}}}},
	})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	used := regexp.MustCompile(`sluice_rollout_[a-z_]+`).FindAllString(string(data), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard queries no sluice_rollout_* metric")
	}
	for _, name := range used {
		if !exported[name] {
			t.Errorf("the dashboard queries %s, which the Rollout controller does not export", name)
		}
	}
}
