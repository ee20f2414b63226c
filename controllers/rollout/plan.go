package rollout

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// plan is the part of the spec the engine follows, checked and defaulted.
type plan struct {
	steps []meshv1alpha1.CanaryStep
	// hash identifies the steps; a run whose steps change starts over.
	hash string
	// analysis is nil without spec.analysis.
	analysis *analysisPlan
}

type analysisPlan struct {
	interval     time.Duration
	failureLimit int32
	minRequests  *int32
	metrics      []meshv1alpha1.AnalysisMetric
}

// maxSteps mirrors the CRD's limit on spec.strategy.canary.steps.
const maxSteps = 50

// compile checks the spec the CRD's validation should already have checked (the engine does not
// trust it to) and returns the plan, or a sentence saying what is wrong.
func compile(spec meshv1alpha1.RolloutSpec) (plan, string) {
	if spec.Strategy.Canary == nil {
		return plan{}, "spec.strategy.canary is missing"
	}
	steps := spec.Strategy.Canary.Steps
	if len(steps) == 0 || len(steps) > maxSteps {
		return plan{}, fmt.Sprintf("spec.strategy.canary.steps has %d steps; it needs 1 to %d", len(steps), maxSteps)
	}
	weights := 0
	for i, s := range steps {
		field := fmt.Sprintf("spec.strategy.canary.steps[%d]", i)
		switch {
		case (s.SetWeight == nil) == (s.Pause == nil):
			return plan{}, field + " must set exactly one of setWeight or pause"
		case s.SetWeight != nil && (*s.SetWeight < 0 || *s.SetWeight > 100):
			return plan{}, fmt.Sprintf("%s.setWeight is %d; it must be 0 to 100", field, *s.SetWeight)
		case s.Pause != nil && s.Pause.Duration != nil && s.Pause.Duration.Duration < 0:
			return plan{}, fmt.Sprintf("%s.pause.duration is %s; it must not be negative", field, s.Pause.Duration.Duration)
		}
		if s.SetWeight != nil {
			weights++
		}
	}
	if weights == 0 {
		return plan{}, "spec.strategy.canary.steps has no setWeight step, so the canary would never receive traffic"
	}
	p := plan{steps: steps, hash: stepsHash(steps)}
	if spec.Analysis == nil {
		return p, ""
	}
	a, problem := compileAnalysis(spec.Analysis)
	if problem != "" {
		return plan{}, problem
	}
	p.analysis = a
	return p, ""
}

func compileAnalysis(an *meshv1alpha1.Analysis) (*analysisPlan, string) {
	a := &analysisPlan{interval: DefaultInterval, failureLimit: an.FailureLimit, minRequests: an.MinRequests, metrics: an.Metrics}
	if an.Interval != nil {
		a.interval = an.Interval.Duration
	}
	switch {
	case a.interval <= 0:
		return nil, fmt.Sprintf("spec.analysis.interval is %s; it must be positive", a.interval)
	case a.failureLimit < 0:
		return nil, fmt.Sprintf("spec.analysis.failureLimit is %d; it must not be negative", a.failureLimit)
	case a.minRequests != nil && *a.minRequests < 0:
		return nil, fmt.Sprintf("spec.analysis.minRequests is %d; it must not be negative", *a.minRequests)
	case len(a.metrics) == 0:
		return nil, "spec.analysis.metrics is empty; list at least one metric, or remove spec.analysis"
	}
	seen := map[string]bool{}
	for i, m := range a.metrics {
		field := fmt.Sprintf("spec.analysis.metrics[%d]", i)
		lo, hi := m.ThresholdRange.Min, m.ThresholdRange.Max
		switch {
		case m.Name == "":
			return nil, field + ".name is empty"
		case seen[m.Name]:
			return nil, fmt.Sprintf("%s.name %q is used twice", field, m.Name)
		case (m.Template == "") == (m.Query == ""):
			return nil, field + " must set exactly one of template or query"
		case lo == nil && hi == nil:
			return nil, field + ".thresholdRange must set min, max or both"
		case lo != nil && math.IsNaN(*lo), hi != nil && math.IsNaN(*hi):
			return nil, field + ".thresholdRange bounds must be numbers"
		case lo != nil && hi != nil && *lo > *hi:
			return nil, field + ".thresholdRange.min is greater than max"
		}
		seen[m.Name] = true
	}
	return a, ""
}

// stepsHash identifies a list of steps.
func stepsHash(steps []meshv1alpha1.CanaryStep) string {
	data, err := json.Marshal(steps)
	if err != nil {
		return "" // steps are plain data; this does not happen
	}
	h := fnv.New64a()
	_, _ = h.Write(data)
	return fmt.Sprintf("%016x", h.Sum64())
}

// describe names a step for messages: "step 3/6 (setWeight 30)".
func (p *plan) describe(i int32) string {
	n := len(p.steps)
	if i < 0 || int(i) >= n {
		return fmt.Sprintf("after the last step (%d)", n)
	}
	s := p.steps[i]
	what := "pause until promoted"
	switch {
	case s.SetWeight != nil:
		what = fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		what = "pause " + s.Pause.Duration.Duration.String()
	}
	return fmt.Sprintf("step %d/%d (%s)", i+1, n, what)
}
