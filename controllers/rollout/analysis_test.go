package rollout

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestAggregate(t *testing.T) {
	metrics := []meshv1alpha1.AnalysisMetric{
		{Name: "a", ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr.To(99.0)}},
		{Name: "b", ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(500.0)}},
	}
	pass := func(name string) MetricResult { return MetricResult{Name: name, Verdict: VerdictPass, Value: 1} }
	fail := func(name string) MetricResult {
		return MetricResult{Name: name, Verdict: VerdictFail, Value: 42, Min: ptr.To(99.0)}
	}
	inconclusive := func(name string, r InconclusiveReason) MetricResult {
		return MetricResult{Name: name, Verdict: VerdictInconclusive, Reason: r, Value: math.NaN(), Error: "boom"}
	}
	for _, tc := range []struct {
		name        string
		results     []MetricResult
		minRequests *int32
		requests    *int64
		verdict     Verdict
		reason      InconclusiveReason
		detail      string
	}{
		{name: "every metric passed", results: []MetricResult{pass("a"), pass("b")}, verdict: VerdictPass},
		{name: "one failed", results: []MetricResult{pass("a"), fail("b")}, verdict: VerdictFail, detail: "b = 42, outside min 99"},
		{name: "a failure beats an error", results: []MetricResult{inconclusive("a", ReasonError), fail("b")}, verdict: VerdictFail},
		{name: "no data", results: []MetricResult{pass("a"), inconclusive("b", ReasonNoData)},
			verdict: VerdictInconclusive, reason: ReasonNoData, detail: "b: no data"},
		{name: "an error beats no data", results: []MetricResult{inconclusive("a", ReasonNoData), inconclusive("b", ReasonError)},
			verdict: VerdictInconclusive, reason: ReasonError, detail: "a: no data; b: error: boom"},
		{name: "NaN", results: []MetricResult{pass("a"), inconclusive("b", ReasonNaN)},
			verdict: VerdictInconclusive, reason: ReasonNaN, detail: "b: value NaN"},
		{name: "a missing metric is an error", results: []MetricResult{pass("a")},
			verdict: VerdictInconclusive, reason: ReasonError, detail: "b: error: no result in the check"},
		{name: "results for other metrics are ignored", results: []MetricResult{pass("a"), pass("b"), fail("zzz")}, verdict: VerdictPass},
		{name: "the first result of a name counts", results: []MetricResult{pass("a"), pass("b"), fail("a")}, verdict: VerdictPass},
		{name: "an unknown verdict is an error", results: []MetricResult{pass("a"), {Name: "b", Verdict: "Maybe"}},
			verdict: VerdictInconclusive, reason: ReasonError, detail: `b: error: unknown verdict "Maybe"`},
		{name: "an unknown reason is an error", results: []MetricResult{pass("a"), {Name: "b", Verdict: VerdictInconclusive, Reason: "Hmm"}},
			verdict: VerdictInconclusive, reason: ReasonError, detail: "b: error"},
		{name: "too few requests: even a failure waits", results: []MetricResult{fail("a"), pass("b")},
			minRequests: ptr.To[int32](50), requests: ptr.To[int64](49),
			verdict: VerdictInconclusive, reason: ReasonTooFewRequests, detail: "the canary served 49 requests, fewer than minRequests 50"},
		{name: "enough requests", results: []MetricResult{pass("a"), pass("b")},
			minRequests: ptr.To[int32](50), requests: ptr.To[int64](50), verdict: VerdictPass},
		{name: "an unknown request count is an error", results: []MetricResult{pass("a"), pass("b")},
			minRequests: ptr.To[int32](50), verdict: VerdictInconclusive, reason: ReasonError},
		{name: "minRequests 0 needs no count", results: []MetricResult{pass("a"), pass("b")},
			minRequests: ptr.To[int32](0), verdict: VerdictPass},
		{name: "too few requests and an error: an error", results: []MetricResult{inconclusive("a", ReasonError), pass("b")},
			minRequests: ptr.To[int32](50), requests: ptr.To[int64](1), verdict: VerdictInconclusive, reason: ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Aggregate(metrics, tc.minRequests, Check{Requests: tc.requests, Metrics: tc.results})
			if got.Verdict != tc.verdict || got.Reason != tc.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", got.Verdict, got.Reason, got.Detail, tc.verdict, tc.reason)
			}
			if tc.detail != "" && got.Detail != tc.detail {
				t.Errorf("detail %q, want %q", got.Detail, tc.detail)
			}
			if len(got.Results) != len(metrics) || got.Results[0].Name != "a" || got.Results[1].Name != "b" {
				t.Errorf("results not in spec order: %+v", got.Results)
			}
			for _, r := range got.Results {
				if (r.Verdict == VerdictInconclusive) != (r.Reason != "") {
					t.Errorf("result %+v: a reason goes with Inconclusive only", r)
				}
			}
		})
	}
}

func TestEvidenceIsBounded(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	long := strings.Repeat("é", 2000)
	w.analysis = func() outcome { return outcome{requests: 500, err: long} }
	w.runFor(2 * time.Minute)
	ev := w.st.Analysis.Metrics[0]
	last := ev.Results[len(ev.Results)-1]
	if len(last.Error) > maxErrorLen || !utf8.ValidString(last.Error) || !strings.HasSuffix(last.Error, "…") {
		t.Errorf("error kept as %d bytes: %q", len(last.Error), last.Error)
	}
	if last.Value != "" || last.Reason != ReasonError || *last.Requests != 500 {
		t.Errorf("result %+v", last)
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456…"},
		{"ééééé", 8, "éé…"}, // never half a rune
	} {
		if got := cut(tc.in, tc.n); got != tc.want || len(got) > tc.n {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// A check is counted once, for the run and revision it measured.
func TestChecksAreCountedOnce(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 1, 10), time.Hour) // one passing check so far
	w.analysis = nil
	w.now = w.now.Add(20 * time.Second)
	base := w.st.Analysis
	check := func(at time.Time, rev string) Check {
		return Check{Time: at, Revision: rev, Requests: ptr.To[int64](500), Metrics: failing.results(w.spec)}
	}
	in := w.input()
	in.Checks = []Check{
		check(w.st.RunStartedAt.Time, ""),      // from before the run
		check(base.LastCheckAt.Time, ""),       // already counted
		check(w.now.Add(-time.Second), "v9"),   // about another revision
		check(w.now.Add(-time.Second), "v2"),   // new: counted
		check(w.now.Add(-2*time.Second), "v2"), // older than the one just counted
	}
	d := Step(in)
	if got := d.State.Analysis; got.FailedChecks != 1 || got.PassedChecks != base.PassedChecks || got.LastVerdict != VerdictFail {
		t.Fatalf("counted %+v", got)
	}
	in.State = d.State
	if again := Step(in); again.State.Analysis.FailedChecks != 1 {
		t.Errorf("the same checks counted again: %+v", again.State.Analysis)
	}
}

func TestTimesAreStoredToTheSecond(t *testing.T) {
	in := Input{Now: t0.Add(1500 * time.Millisecond), Spec: sampleSpec(),
		Canary: Workload{Revision: "v2", Replicas: 3, Ready: true}, Stable: Workload{Revision: "v1", Replicas: 3, Ready: true}}
	d := Step(in)
	if got := d.State.RunStartedAt.Time; !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("run started at %s, want rounded up to %s", got, t0.Add(2*time.Second))
	}
}
