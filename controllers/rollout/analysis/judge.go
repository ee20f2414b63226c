package analysis

import (
	"fmt"

	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/internal/promquery"
)

// judge turns a query's answer into the metric's verdict. promquery.Check gives Pass or Fail for a
// number; what is not a number is inconclusive for the reason its kind says.
func judge(res rollout.MetricResult, answer promquery.Result, err error) rollout.MetricResult {
	res.Samples = answer.Samples
	if answer.Kind == promquery.KindValue || answer.Kind == promquery.KindNaN {
		res.Value = answer.Value
	}
	switch promquery.Check(answer, res.Min, res.Max) {
	case promquery.Pass:
		res.Verdict = rollout.VerdictPass
		return res
	case promquery.Fail:
		res.Verdict = rollout.VerdictFail
		return res
	}
	switch answer.Kind {
	case promquery.KindNoData:
		return inconclusive(res, rollout.ReasonNoData, err)
	case promquery.KindNaN:
		return inconclusive(res, rollout.ReasonNaN, err)
	}
	if err == nil {
		err = fmt.Errorf("query answer of kind %v cannot be judged", answer.Kind)
	}
	return inconclusive(res, rollout.ReasonError, err)
}

func inconclusive(res rollout.MetricResult, reason rollout.InconclusiveReason, err error) rollout.MetricResult {
	res.Verdict, res.Reason = rollout.VerdictInconclusive, reason
	if err != nil {
		res.Error = err.Error()
	}
	return res
}
