package analysis

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/internal/promquery"
)

func TestJudge(t *testing.T) {
	lo := 99.0
	queryErr := errors.New("querying Prometheus at http://p:9090: boom")
	for _, tt := range []struct {
		name    string
		answer  promquery.Result
		err     error
		verdict rollout.Verdict
		reason  rollout.InconclusiveReason
		value   float64 // NaN: want NaN
		errText string
	}{
		{"pass", promquery.Result{Kind: promquery.KindValue, Value: 99.5, Samples: 1}, nil, rollout.VerdictPass, "", 99.5, ""},
		{"fail", promquery.Result{Kind: promquery.KindValue, Value: 80, Samples: 1}, nil, rollout.VerdictFail, "", 80, ""},
		{"no data", promquery.Result{Kind: promquery.KindNoData}, nil, rollout.VerdictInconclusive, rollout.ReasonNoData, math.NaN(), ""},
		{"NaN", promquery.Result{Kind: promquery.KindNaN, Value: math.NaN(), Samples: 1}, nil, rollout.VerdictInconclusive, rollout.ReasonNaN, math.NaN(), ""},
		{"Inf", promquery.Result{Kind: promquery.KindNaN, Value: math.Inf(1), Samples: 1}, nil, rollout.VerdictInconclusive, rollout.ReasonNaN, math.Inf(1), ""},
		{"error", promquery.Result{Kind: promquery.KindError, Samples: 2}, queryErr, rollout.VerdictInconclusive, rollout.ReasonError, math.NaN(), queryErr.Error()},
		{"error kind without an error", promquery.Result{Kind: promquery.KindError}, nil, rollout.VerdictInconclusive, rollout.ReasonError, math.NaN(), "cannot be judged"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := judge(rollout.MetricResult{Name: "m", Value: math.NaN(), Min: &lo}, tt.answer, tt.err)
			sameValue := got.Value == tt.value || (math.IsNaN(got.Value) && math.IsNaN(tt.value))
			if got.Verdict != tt.verdict || got.Reason != tt.reason || !sameValue || got.Samples != tt.answer.Samples {
				t.Errorf("judge = %+v, want %s %s value %v", got, tt.verdict, tt.reason, tt.value)
			}
			if (tt.errText == "") != (got.Error == "") || (tt.errText != "" && !strings.Contains(got.Error, tt.errText)) {
				t.Errorf("error = %q, want %q", got.Error, tt.errText)
			}
		})
	}
}
