package rollout

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Lengths the evidence keeps of a query and of an error.
const (
	maxQueryLen = 1024
	maxErrorLen = 256
)

// CheckVerdict is a whole check's outcome.
type CheckVerdict struct {
	Verdict Verdict
	// Reason is why an inconclusive check is inconclusive: ReasonError when any metric erred,
	// otherwise the first metric's reason.
	Reason InconclusiveReason
	// Detail names the metrics that did not pass, for messages and events.
	Detail string
	// Results are the check's results in spec order, a missing metric as an Error.
	Results []MetricResult
}

// Aggregate judges a check against the spec's metrics: it fails when any metric failed, passes
// when every metric passed, and is inconclusive otherwise. A metric missing from the check is an
// inconclusive Error, an unknown verdict too; results for metrics not in the spec are ignored. With
// minRequests set, a check whose request count is below it (or unknown) cannot pass or fail.
func Aggregate(metrics []meshv1alpha1.AnalysisMetric, minRequests *int32, check Check) CheckVerdict {
	out := CheckVerdict{Verdict: VerdictPass}
	var failed, inconclusive []string
	for _, m := range metrics {
		r, ok := findResult(check.Metrics, m.Name)
		if !ok {
			r = MetricResult{Name: m.Name, Verdict: VerdictInconclusive, Reason: ReasonError, Value: math.NaN(),
				Min: m.ThresholdRange.Min, Max: m.ThresholdRange.Max, Error: "no result in the check"}
		}
		switch r.Verdict {
		case VerdictPass, VerdictFail:
			r.Reason = ""
		case VerdictInconclusive:
			if !r.Reason.known() {
				r.Reason = ReasonError
			}
		default:
			r.Error = fmt.Sprintf("unknown verdict %q", r.Verdict)
			r.Verdict, r.Reason = VerdictInconclusive, ReasonError
		}
		out.Results = append(out.Results, r)
		switch r.Verdict {
		case VerdictFail:
			failed = append(failed, fmt.Sprintf("%s = %s, outside %s", r.Name, formatValue(r.Value), formatThreshold(r.Min, r.Max)))
		case VerdictInconclusive:
			inconclusive = append(inconclusive, r.Name+": "+describeInconclusive(r))
			if out.Reason == "" || r.Reason == ReasonError {
				out.Reason = r.Reason
			}
		}
	}
	// Too few requests make the values meaningless, whatever they are.
	if minRequests != nil && *minRequests > 0 {
		switch {
		case check.Requests == nil:
			return tooFew(out, ReasonError, "the canary's request count is unknown", inconclusive)
		case *check.Requests < int64(*minRequests):
			return tooFew(out, ReasonTooFewRequests,
				fmt.Sprintf("the canary served %d requests, fewer than minRequests %d", *check.Requests, *minRequests), inconclusive)
		}
	}
	switch {
	case len(failed) > 0:
		out.Verdict, out.Reason, out.Detail = VerdictFail, "", strings.Join(failed, "; ")
	case len(inconclusive) > 0:
		out.Verdict, out.Detail = VerdictInconclusive, strings.Join(inconclusive, "; ")
	}
	return out
}

// tooFew makes the whole check inconclusive for reason: every metric that did not err gets it. A
// metric that erred keeps its error, and makes the check's reason Error.
func tooFew(out CheckVerdict, reason InconclusiveReason, detail string, inconclusive []string) CheckVerdict {
	for i := range out.Results {
		r := &out.Results[i]
		if r.Verdict == VerdictInconclusive && r.Reason == ReasonError {
			continue
		}
		r.Verdict, r.Reason = VerdictInconclusive, reason
		if reason == ReasonError {
			r.Error = detail
		}
	}
	if out.Reason == ReasonError {
		reason = ReasonError
		detail += "; " + strings.Join(inconclusive, "; ")
	}
	out.Verdict, out.Reason, out.Detail = VerdictInconclusive, reason, detail
	return out
}

func findResult(results []MetricResult, name string) (MetricResult, bool) {
	for _, r := range results {
		if r.Name == name {
			return r, true
		}
	}
	return MetricResult{}, false
}

func (r InconclusiveReason) known() bool {
	switch r {
	case ReasonNoData, ReasonNaN, ReasonTooFewRequests, ReasonError:
		return true
	}
	return false
}

func describeInconclusive(r MetricResult) string {
	switch r.Reason {
	case ReasonNoData:
		return "no data"
	case ReasonNaN:
		return "value " + formatValue(r.Value)
	case ReasonTooFewRequests:
		return "too few requests"
	}
	if r.Error != "" {
		return "error: " + cut(r.Error, maxErrorLen)
	}
	return "error"
}

// processChecks counts the checks run since the last Step and aborts the run when they say so.
func (e *engine) processChecks() {
	a := e.plan.analysis
	st := &e.st
	if a == nil || !isRunning(st.Phase) || e.restarted || e.in.Canary.Revision != st.CanaryRevision {
		return
	}
	for _, c := range e.in.Checks {
		if !isRunning(st.Phase) {
			return
		}
		if c.Revision != "" && c.Revision != st.CanaryRevision {
			continue
		}
		if st.Analysis.LastCheckAt != nil && !c.Time.After(st.Analysis.LastCheckAt.Time) {
			continue
		}
		if st.RunStartedAt != nil && !c.Time.After(st.RunStartedAt.Time) {
			continue // measured before this run started
		}
		v := Aggregate(a.metrics, a.minRequests, c)
		e.record(c, v)
		e.count(v)
	}
}

// count updates the counters with one check's verdict and aborts when a limit is passed.
func (e *engine) count(v CheckVerdict) {
	an := &e.st.Analysis
	previous := an.LastVerdict
	an.LastVerdict = v.Verdict
	limit := e.plan.analysis.failureLimit
	switch v.Verdict {
	case VerdictPass:
		an.PassedChecks++
		an.ConsecutiveErrors = 0
		if previous != "" && previous != VerdictPass {
			e.normal("CheckPassed", "analysis check passed at weight %d%%", e.st.CanaryWeight)
		}
	case VerdictFail:
		an.FailedChecks++
		an.ConsecutiveErrors = 0
		if an.FailedChecks > limit {
			e.abort("AnalysisFailed", fmt.Sprintf("%d failed checks, more than failureLimit %d; last: %s",
				an.FailedChecks, limit, v.Detail))
			return
		}
		e.warning("CheckFailed", "analysis check failed (%d of %d tolerated): %s", an.FailedChecks, limit, v.Detail)
	case VerdictInconclusive:
		an.InconclusiveChecks++
		if v.Reason != ReasonError {
			an.ConsecutiveErrors = 0
			if previous != VerdictInconclusive {
				e.normal("CheckInconclusive", "analysis check inconclusive, the run waits: %s", v.Detail)
			}
			return
		}
		an.ConsecutiveErrors++
		if an.ConsecutiveErrors >= MaxConsecutiveErrors {
			e.abort("AnalysisErrors", fmt.Sprintf("%d checks in a row could not be evaluated; last: %s",
				an.ConsecutiveErrors, v.Detail))
			return
		}
		e.warning("CheckError", "analysis check could not be evaluated (%d in a row, abort at %d): %s",
			an.ConsecutiveErrors, MaxConsecutiveErrors, v.Detail)
	}
}

// record keeps the check's results as evidence and schedules the next check.
func (e *engine) record(c Check, v CheckVerdict) {
	an := &e.st.Analysis
	at := ceilSecond(c.Time)
	interval := e.plan.analysis.interval
	next := at.Add(interval)
	// Keep to the schedule: a check that ran a little after it was due (the reconcile's delay, the
	// whole seconds of the status) does not push every later check back by as much.
	if due := an.NextCheckAt; due != nil && !due.After(at) && due.Add(interval).After(at) {
		next = due.Add(interval)
	}
	an.LastCheckAt = &metav1.Time{Time: at}
	an.NextCheckAt = &metav1.Time{Time: next}
	evidence := make([]MetricEvidence, 0, len(v.Results))
	for _, r := range v.Results {
		ev := MetricEvidence{Name: r.Name}
		for _, old := range an.Metrics {
			if old.Name == r.Name {
				ev = old
				break
			}
		}
		if r.Query != "" {
			ev.Query = cut(r.Query, maxQueryLen)
		}
		ev.Threshold = formatThreshold(r.Min, r.Max)
		res := MetricEvidenceResult{Time: metav1.Time{Time: at}, Verdict: r.Verdict, Reason: r.Reason,
			Requests: copyInt64(c.Requests), Error: cut(r.Error, maxErrorLen)}
		if r.Verdict != VerdictInconclusive || r.Reason == ReasonNaN {
			res.Value = formatValue(r.Value)
		}
		results := append(append([]MetricEvidenceResult(nil), ev.Results...), res)
		if n := len(results); n > EvidencePerMetric {
			results = results[n-EvidencePerMetric:]
		}
		ev.Results = results
		evidence = append(evidence, ev)
	}
	an.Metrics = evidence
}

// gate says why the run may not leave the current step on the analysis' account, or "" when it
// may. Without analysis, or at weight 0 (nothing to analyse), nothing holds the run. The last check
// must have passed; a setWeight step also needs that check to have run a whole interval after its
// weight was applied.
func (e *engine) gate(setWeight bool) string {
	a := e.plan.analysis
	st := &e.st
	if a == nil || st.CanaryWeight == 0 {
		return ""
	}
	an := &st.Analysis
	switch an.LastVerdict {
	case "":
		return "waiting for the first analysis check"
	case VerdictFail:
		return "the last analysis check failed; waiting for a passing one"
	case VerdictInconclusive:
		return "the last analysis check was inconclusive; waiting for a passing one"
	}
	if setWeight {
		if st.WeightProgrammedAt == nil {
			return fmt.Sprintf("waiting for the proxies to apply %d%%", st.CanaryWeight)
		}
		due := st.WeightProgrammedAt.Add(a.interval)
		if an.LastCheckAt == nil || an.LastCheckAt.Before(&metav1.Time{Time: due}) {
			return fmt.Sprintf("waiting for a check of a whole interval at %d%% (due %s)", st.CanaryWeight, due.Format(time.RFC3339))
		}
	}
	return ""
}

// scheduleAnalysis keeps NextCheckAt set while the run sends the canary traffic, and clears it
// otherwise.
func (e *engine) scheduleAnalysis() {
	st := &e.st
	if e.plan.analysis == nil || !isRunning(st.Phase) || st.CanaryWeight == 0 {
		st.Analysis.NextCheckAt = nil
		return
	}
	if st.Analysis.NextCheckAt == nil {
		st.Analysis.NextCheckAt = &metav1.Time{Time: e.stamp().Add(e.plan.analysis.interval)}
	}
}

// AnalysisDue says whether the reconciler should run an analysis check before calling Step at now.
func (s *State) AnalysisDue(now time.Time) bool {
	return isRunning(s.Phase) && s.Analysis.NextCheckAt != nil && !now.Before(s.Analysis.NextCheckAt.Time)
}

func formatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func formatThreshold(lo, hi *float64) string {
	switch {
	case lo != nil && hi != nil:
		return "min " + formatValue(*lo) + ", max " + formatValue(*hi)
	case lo != nil:
		return "min " + formatValue(*lo)
	case hi != nil:
		return "max " + formatValue(*hi)
	}
	return "no bounds"
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := n - len("…")
	for end > 0 && !isRuneStart(s[end]) {
		end--
	}
	return s[:end] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func copyInt64(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
