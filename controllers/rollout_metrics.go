package controllers

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// rolloutPhases are the values of sluice_rollout_phase's phase label.
var rolloutPhases = []meshv1alpha1.RolloutPhase{
	meshv1alpha1.RolloutPending, meshv1alpha1.RolloutProgressing, meshv1alpha1.RolloutPaused, meshv1alpha1.RolloutPromoting,
	meshv1alpha1.RolloutPromoted, meshv1alpha1.RolloutRolledBack, meshv1alpha1.RolloutFailed,
}

// RolloutMetrics are the Rollouts' state as Prometheus gauges, written from their status by the
// Rollout controller (the leader): docs/kubectl-sluice.md#metrics lists them.
type RolloutMetrics struct {
	phase    *prometheus.GaugeVec // namespace, name, phase: 1 for the current phase, 0 for the others
	weight   *prometheus.GaugeVec // namespace, name
	step     *prometheus.GaugeVec // namespace, name
	value    *prometheus.GaugeVec // namespace, name, metric: the latest analysis value
	checks   *prometheus.GaugeVec // namespace, name, verdict: the current run's checks
	failures *prometheus.GaugeVec // namespace, name: failed checks the run still tolerates
}

// NewRolloutMetrics registers the gauges on reg.
func NewRolloutMetrics(reg prometheus.Registerer) (*RolloutMetrics, error) {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append([]string{"namespace", "name"}, labels...))
	}
	m := &RolloutMetrics{
		phase:    gauge("sluice_rollout_phase", "1 for the Rollout's current phase, 0 for the others.", "phase"),
		weight:   gauge("sluice_rollout_canary_weight", "Percentage of the Service's traffic the canary receives."),
		step:     gauge("sluice_rollout_step", "Index of the step being run (the number of steps once promoted)."),
		value:    gauge("sluice_rollout_analysis_value", "The latest value of each analysis metric (NaN when it had none).", "metric"),
		checks:   gauge("sluice_rollout_analysis_checks", "The current run's analysis checks, by verdict (Pass, Fail, Inconclusive).", "verdict"),
		failures: gauge("sluice_rollout_analysis_failures_left", "Failed checks the current run still tolerates before it rolls back."),
	}
	for _, c := range []prometheus.Collector{m.phase, m.weight, m.step, m.value, m.checks, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe sets the gauges of one Rollout from its status.
func (m *RolloutMetrics) observe(ro *meshv1alpha1.Rollout) {
	if m == nil {
		return
	}
	ns, name, st := ro.Namespace, ro.Name, ro.Status
	for _, p := range rolloutPhases {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		m.phase.WithLabelValues(ns, name, string(p)).Set(v)
	}
	m.weight.WithLabelValues(ns, name).Set(float64(st.CanaryWeight))
	if st.CurrentStepIndex != nil {
		m.step.WithLabelValues(ns, name).Set(float64(*st.CurrentStepIndex))
	}
	a := st.Analysis
	if a == nil {
		return
	}
	m.checks.WithLabelValues(ns, name, "Pass").Set(float64(a.PassedChecks))
	m.checks.WithLabelValues(ns, name, "Fail").Set(float64(a.FailedChecks))
	m.checks.WithLabelValues(ns, name, "Inconclusive").Set(float64(a.InconclusiveChecks))
	if ro.Spec.Analysis != nil {
		m.failures.WithLabelValues(ns, name).Set(float64(max(ro.Spec.Analysis.FailureLimit-a.FailedChecks, 0)))
	}
	for _, e := range a.Metrics {
		if len(e.Results) == 0 {
			continue
		}
		// A value that is not a number (NaN, or none for a query error) is NaN.
		v, err := strconv.ParseFloat(e.Results[len(e.Results)-1].Value, 64)
		if err != nil {
			v, _ = strconv.ParseFloat("NaN", 64)
		}
		m.value.WithLabelValues(ns, name, e.Name).Set(v)
	}
}

// forget drops the series of a deleted Rollout.
func (m *RolloutMetrics) forget(ns, name string) {
	if m == nil {
		return
	}
	match := prometheus.Labels{"namespace": ns, "name": name}
	for _, g := range []*prometheus.GaugeVec{m.phase, m.weight, m.step, m.value, m.checks, m.failures} {
		g.DeletePartialMatch(match)
	}
}
