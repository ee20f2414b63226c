package rollout

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sampleSpec is config/samples/mesh_v1alpha1_rollout.yaml's spec.
func sampleSpec() meshv1alpha1.RolloutSpec {
	return meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "checkout"},
		Service:   meshv1alpha1.ServicePort{Name: "checkout", Port: 8080},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: []meshv1alpha1.CanaryStep{
			weight(10), pause(time.Minute), weight(30), pause(2 * time.Minute), weight(60), manualPause(),
		}}},
		Analysis: &meshv1alpha1.Analysis{
			Interval:     &metav1.Duration{Duration: 30 * time.Second},
			FailureLimit: 2,
			MinRequests:  ptr.To[int32](50),
			Metrics: []meshv1alpha1.AnalysisMetric{
				{Name: "success-rate", Template: meshv1alpha1.MetricRequestSuccessRate, ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr.To(99.0)}},
				{Name: "latency", Template: meshv1alpha1.MetricRequestDuration, ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(500.0)}},
				{Name: "orders-failing", Query: `sum(rate(checkout_orders_failed_total{track="canary"}[{{ .Interval }}]))`,
					ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)}},
			},
		},
	}
}

func weight(w int32) meshv1alpha1.CanaryStep { return meshv1alpha1.CanaryStep{SetWeight: ptr.To(w)} }

func pause(d time.Duration) meshv1alpha1.CanaryStep {
	return meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{Duration: &metav1.Duration{Duration: d}}}
}

func manualPause() meshv1alpha1.CanaryStep {
	return meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{}}
}

// Canned analysis outcomes: what every metric of the sample reports in a check.
var (
	healthy = outcome{requests: 500, values: map[string]float64{"success-rate": 99.9, "latency": 120, "orders-failing": 0}}
	failing = outcome{requests: 500, values: map[string]float64{"success-rate": 91, "latency": 120, "orders-failing": 0}}
	quiet   = outcome{requests: 3, values: map[string]float64{"success-rate": 100, "latency": 80, "orders-failing": 0}}
	noData  = outcome{requests: 500, noData: true}
	broken  = outcome{requests: 500, err: "prometheus: 503 Service Unavailable"}
)

// outcome is how the canary looks to Prometheus in one check.
type outcome struct {
	requests int64
	values   map[string]float64
	noData   bool
	err      string
}

// results judges an outcome the way the analysis runner does.
func (o outcome) results(spec meshv1alpha1.RolloutSpec) []MetricResult {
	var out []MetricResult
	for _, m := range spec.Analysis.Metrics {
		r := MetricResult{Name: m.Name, Query: "q(" + m.Name + ")", Min: m.ThresholdRange.Min, Max: m.ThresholdRange.Max, Value: math.NaN()}
		switch {
		case o.err != "":
			r.Verdict, r.Reason, r.Error = VerdictInconclusive, ReasonError, o.err
		case o.noData:
			r.Verdict, r.Reason = VerdictInconclusive, ReasonNoData
		default:
			r.Value, r.Samples, r.Verdict = o.values[m.Name], 1, VerdictPass
			if (r.Min != nil && r.Value < *r.Min) || (r.Max != nil && r.Value > *r.Max) {
				r.Verdict = VerdictFail
			}
		}
		out = append(out, r)
	}
	return out
}

// world is a cluster the engine drives: it carries the actions out (a second later) and runs the
// analysis checks when the State says they are due.
type world struct {
	t    *testing.T
	spec meshv1alpha1.RolloutSpec
	now  time.Time
	st   State

	latest         string // the user's Deployment's revision
	canaryReplicas int32
	canaryReady    bool
	stableRev      string
	stableReady    bool
	programmed     *int32

	// The cluster's behaviour.
	proxiesFrozen bool // proxies ignore SetWeight
	stableFrozen  bool // the stable Deployment never becomes ready
	canaryBroken  bool // canary pods never become ready
	analysis      func() outcome
	// lag delays every timed reconcile past its RequeueAfter, as a busy operator would.
	lag       time.Duration
	roundTrip bool // store the State as JSON between Steps, like an operator restart would
	requests  map[RequestKind]string

	last    Decision
	lastAt  time.Time // when last was decided
	events  []Event
	actions []Action // every non-event action, in order
	trace   []string // "t+32s Progressing step=1 weight=10" at every change of those
}

// newWorld returns a cluster where revision v1 is stable and serves everything, the engine idle.
func newWorld(t *testing.T, spec meshv1alpha1.RolloutSpec) *world {
	t.Helper()
	w := &world{t: t, spec: spec, now: t0, latest: "v1", canaryReplicas: 3, canaryReady: true,
		analysis: func() outcome { return healthy }, requests: map[RequestKind]string{}}
	w.runUntil(func() bool { return w.st.Phase == meshv1alpha1.RolloutPromoted && w.canaryReplicas == 0 }, time.Hour)
	w.trace, w.events, w.actions = nil, nil, nil
	w.now = t0
	return w
}

func (w *world) input() Input {
	in := Input{Now: w.now, Generation: 1, Spec: w.spec, State: w.st,
		Canary:           Workload{Revision: w.latest, Replicas: w.canaryReplicas, Ready: w.canaryReady && w.canaryReplicas > 0},
		Stable:           Workload{Revision: w.stableRev, Replicas: 3, Ready: w.stableReady},
		ProgrammedWeight: w.programmed}
	if w.roundTrip {
		in.State = throughStatus(w.t, w.st)
	}
	if w.st.AnalysisDue(w.now) && w.analysis != nil {
		o := w.analysis()
		in.Checks = []Check{{Time: w.now, Revision: w.latest, Requests: ptr.To(o.requests), Metrics: o.results(w.spec)}}
	}
	for _, k := range RequestKinds {
		if id, ok := w.requests[k]; ok {
			in.Requests = append(in.Requests, Request{Kind: k, ID: id})
		}
	}
	return in
}

// step runs one Step and carries its actions out; it says whether the cluster changed.
func (w *world) step() bool {
	w.t.Helper()
	in := w.input()
	d := Step(in)
	before := w.summary()
	w.st, w.last, w.lastAt = d.State, d, w.now
	changed := false
	for _, a := range d.Actions {
		switch a := a.(type) {
		case Event:
			w.events = append(w.events, a)
			continue
		case SetWeight:
			if !w.proxiesFrozen {
				w.programmed = ptr.To(a.Weight)
				changed = true
			}
		case ScaleCanary:
			w.canaryReplicas = 0
			if a.Up {
				w.canaryReplicas = 3
			}
			w.canaryReady = a.Up && !w.canaryBroken
			changed = true
		case CopyTemplateToStable:
			w.stableRev, w.stableReady = a.Revision, !w.stableFrozen
			changed = true
		}
		w.actions = append(w.actions, a)
	}
	if after := w.summary(); after != before {
		w.trace = append(w.trace, fmt.Sprintf("t+%s %s", w.now.Sub(t0), after))
	}
	w.checkInvariants(in, d)
	return changed
}

func (w *world) summary() string {
	return fmt.Sprintf("%s step=%d weight=%d", w.st.Phase, w.st.CurrentStepIndex, w.st.CanaryWeight)
}

// runUntil steps until done says so, moving the clock a second after the cluster changed (the
// watch event's reconcile) or by RequeueAfter; it fails when nothing would wake the engine or the
// time limit passes.
func (w *world) runUntil(done func() bool, limit time.Duration) {
	w.t.Helper()
	end := w.now.Add(limit)
	for !w.now.After(end) {
		changed := w.step()
		if done() {
			return
		}
		switch {
		case changed:
			w.now = w.now.Add(time.Second)
		case w.last.RequeueAfter > 0:
			w.now = w.now.Add(w.last.RequeueAfter + w.lag)
		default:
			w.t.Fatalf("stuck at %s: %s (%s)\ntrace:\n%s", w.now.Sub(t0), w.summary(), w.st.Message, strings.Join(w.trace, "\n"))
		}
	}
	w.t.Fatalf("not done after %s: %s (%s)\ntrace:\n%s", limit, w.summary(), w.st.Message, strings.Join(w.trace, "\n"))
}

// runFor steps for d of simulated time (or until nothing would wake the engine).
func (w *world) runFor(d time.Duration) {
	w.t.Helper()
	end := w.now.Add(d)
	for w.now.Before(end) {
		changed := w.step()
		switch {
		case changed:
			w.now = w.now.Add(time.Second)
		case w.last.RequeueAfter > 0:
			w.now = w.now.Add(w.last.RequeueAfter)
		default:
			w.now = end
		}
	}
}

func (w *world) request(k RequestKind, id string) { w.requests[k] = id }

func (w *world) is(phase meshv1alpha1.RolloutPhase, step, weight int32) func() bool {
	return func() bool {
		return w.st.Phase == phase && w.st.CurrentStepIndex == step && w.st.CanaryWeight == weight
	}
}

func (w *world) expect(phase meshv1alpha1.RolloutPhase, step, weight int32) {
	w.t.Helper()
	if !w.is(phase, step, weight)() {
		w.t.Fatalf("at t+%s: got %s (%s), want %s step=%d weight=%d\ntrace:\n%s", w.now.Sub(t0), w.summary(), w.st.Message,
			phase, step, weight, strings.Join(w.trace, "\n"))
	}
}

func (w *world) condition(t string) metav1.Condition {
	for _, c := range w.last.Conditions {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{Type: t, Status: "Absent"}
}

func (w *world) hasEvent(reason string) bool {
	for _, e := range w.events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

// checkInvariants holds after every Step of every scenario; the fuzzer checks the same ones.
func (w *world) checkInvariants(in Input, d Decision) {
	w.t.Helper()
	if err := invariants(in, d); err != nil {
		w.t.Fatalf("at t+%s: %v", w.now.Sub(t0), err)
	}
}
