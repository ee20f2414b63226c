// Package analysis runs a Rollout's canary analysis: it fills in each metric's query (a built-in
// template or the user's PromQL), asks Prometheus, and judges the answers into a rollout.Check for
// the engine. The built-in templates read the data plane's own metrics
// (docs/data-plane-metrics.md).
package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/internal/promquery"
)

// DefaultTimeout bounds one check, all its queries together, when Runner.Timeout is zero.
const DefaultTimeout = 20 * time.Second

// Runner runs analysis checks against Prometheus.
type Runner struct {
	// DefaultAddress is the Prometheus HTTP API queried when spec.analysis.prometheus is absent.
	DefaultAddress string
	// Timeout bounds one check; DefaultTimeout when zero.
	Timeout time.Duration
}

// Run queries every metric of the analysis once, concurrently, evaluated at now, and returns the
// check: one judged result per metric in spec order, and the canary's request count when
// spec.analysis.minRequests is set. vars name the canary; an empty vars.Interval is filled from
// spec.analysis.interval. Run never fails: a metric whose query cannot be built or answered is an
// inconclusive Error, which the engine counts.
func (r *Runner) Run(ctx context.Context, a *meshv1alpha1.Analysis, vars promquery.Vars, now time.Time) rollout.Check {
	check := rollout.Check{Time: now, Revision: vars.CanaryRevision}
	if a == nil {
		return check
	}
	if vars.Interval == "" {
		vars.Interval = promDuration(a.Interval)
	}
	q := querier{address: r.DefaultAddress, vars: vars, at: now}
	if a.Prometheus != nil && a.Prometheus.Address != "" {
		q.address = a.Prometheus.Address
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	check.Metrics = make([]rollout.MetricResult, len(a.Metrics))
	var wg sync.WaitGroup
	for i, m := range a.Metrics {
		wg.Go(func() { check.Metrics[i] = q.metric(ctx, i, m) })
	}
	if a.MinRequests != nil {
		wg.Go(func() { check.Requests = q.requests(ctx) })
	}
	wg.Wait()
	return check
}

// promDuration writes spec.analysis.interval (rollout.DefaultInterval when absent) as a PromQL
// duration such as 1m or 1m30s.
func promDuration(d *metav1.Duration) string {
	interval := rollout.DefaultInterval
	if d != nil {
		interval = d.Duration
	}
	return model.Duration(interval).String()
}

// querier runs one check's queries.
type querier struct {
	address string
	vars    promquery.Vars
	at      time.Time
}

// errNoAddress is a metric's error when neither the Rollout nor the operator names a Prometheus.
var errNoAddress = errors.New("no Prometheus address: set spec.analysis.prometheus.address or the operator's default")

// metric renders, runs and judges spec.analysis.metrics[i].
func (q querier) metric(ctx context.Context, i int, m meshv1alpha1.AnalysisMetric) rollout.MetricResult {
	res := rollout.MetricResult{
		Name:  m.Name,
		Value: math.NaN(),
		Min:   copyFloat(m.ThresholdRange.Min),
		Max:   copyFloat(m.ThresholdRange.Max),
	}
	query, err := render(i, m, q.vars)
	if err != nil {
		return inconclusive(res, rollout.ReasonError, fmt.Errorf("metric %q: %w", m.Name, err))
	}
	res.Query = query
	if q.address == "" {
		return inconclusive(res, rollout.ReasonError, errNoAddress)
	}
	answer, err := promquery.Query(ctx, q.address, query, q.at)
	return judge(res, answer, err)
}

// render fills in the metric's query template, naming the spec field at fault when it cannot.
func render(i int, m meshv1alpha1.AnalysisMetric, vars promquery.Vars) (string, error) {
	var text, field string
	switch {
	case m.Template != "" && m.Query != "":
		return "", fmt.Errorf("spec.analysis.metrics[%d]: set template or query, not both", i)
	case m.Template != "":
		field = fmt.Sprintf("spec.analysis.metrics[%d].template", i)
		t, err := TemplateQuery(m.Template)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		text = t
	case m.Query != "":
		field, text = fmt.Sprintf("spec.analysis.metrics[%d].query", i), m.Query
	default:
		return "", fmt.Errorf("spec.analysis.metrics[%d]: set template or query", i)
	}
	query, err := promquery.Render(text, vars)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return query, nil
}

func copyFloat(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
