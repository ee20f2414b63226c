package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The engine checks what the CRD validates too, and says what is wrong.
func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*meshv1alpha1.RolloutSpec)
		want string // "" = valid
	}{
		{"the sample", func(*meshv1alpha1.RolloutSpec) {}, ""},
		{"no analysis", func(s *meshv1alpha1.RolloutSpec) { s.Analysis = nil }, ""},
		{"default interval", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Interval = nil }, ""},
		{"no canary", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary = nil }, "spec.strategy.canary is missing"},
		{"no steps", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps = nil }, "has 0 steps"},
		{"too many steps", func(s *meshv1alpha1.RolloutSpec) {
			s.Strategy.Canary.Steps = make([]meshv1alpha1.CanaryStep, 51)
			for i := range s.Strategy.Canary.Steps {
				s.Strategy.Canary.Steps[i] = weight(1)
			}
		}, "has 51 steps"},
		{"both in a step", func(s *meshv1alpha1.RolloutSpec) {
			s.Strategy.Canary.Steps[0].Pause = &meshv1alpha1.RolloutPause{}
		}, "steps[0] must set exactly one"},
		{"neither in a step", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps[1] = meshv1alpha1.CanaryStep{} }, "steps[1] must set exactly one"},
		{"weight over 100", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps[2] = weight(101) }, "steps[2].setWeight is 101"},
		{"negative weight", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps[2] = weight(-1) }, "steps[2].setWeight is -1"},
		{"negative pause", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps[1] = pause(-time.Second) }, "must not be negative"},
		{"no setWeight", func(s *meshv1alpha1.RolloutSpec) { s.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{manualPause()} }, "no setWeight step"},
		{"zero interval", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Interval = &metav1.Duration{} }, "interval is 0s"},
		{"negative failureLimit", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.FailureLimit = -1 }, "failureLimit is -1"},
		{"negative minRequests", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.MinRequests = ptr.To[int32](-1) }, "minRequests is -1"},
		{"no metrics", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Metrics = nil }, "metrics is empty"},
		{"duplicate metric", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Metrics[1].Name = "success-rate" }, `"success-rate" is used twice`},
		{"unnamed metric", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Metrics[1].Name = "" }, "metrics[1].name is empty"},
		{"template and query", func(s *meshv1alpha1.RolloutSpec) { s.Analysis.Metrics[0].Query = "up" }, "exactly one of template or query"},
		{"no bounds", func(s *meshv1alpha1.RolloutSpec) {
			s.Analysis.Metrics[0].ThresholdRange = meshv1alpha1.ThresholdRange{}
		}, "must set min, max or both"},
		{"min over max", func(s *meshv1alpha1.RolloutSpec) {
			s.Analysis.Metrics[0].ThresholdRange = meshv1alpha1.ThresholdRange{Min: ptr.To(2.0), Max: ptr.To(1.0)}
		}, "min is greater than max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := sampleSpec()
			tc.edit(&spec)
			_, problem := compile(spec)
			if (tc.want == "") != (problem == "") || !strings.Contains(problem, tc.want) {
				t.Errorf("problem %q, want %q", problem, tc.want)
			}
		})
	}
}

func TestStepsHash(t *testing.T) {
	a, b := sampleSpec().Strategy.Canary.Steps, sampleSpec().Strategy.Canary.Steps
	if stepsHash(a) != stepsHash(b) || len(stepsHash(a)) != 16 {
		t.Errorf("equal steps hash differently: %s %s", stepsHash(a), stepsHash(b))
	}
	b[3] = pause(3 * time.Minute)
	if stepsHash(a) == stepsHash(b) {
		t.Errorf("a changed pause keeps the hash")
	}
}
