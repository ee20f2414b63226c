package promquery

import "fmt"

// Verdict is a metric check's outcome for one analysis step.
type Verdict int

const (
	// Inconclusive means the step says nothing: no data, NaN, or a failed query. It is never a
	// pass; what to do about it (wait, count towards a limit, abort) is the caller's policy.
	Inconclusive Verdict = iota
	// Pass means the value lies within the bounds.
	Pass
	// Fail means the value lies outside the bounds.
	Fail
)

func (v Verdict) String() string {
	switch v {
	case Pass:
		return "Pass"
	case Fail:
		return "Fail"
	case Inconclusive:
		return "Inconclusive"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Check judges a query result against inclusive bounds; a nil bound is no bound. A KindValue result
// passes when min <= Value <= max and fails otherwise; every other kind (NoData, NaN, Error) is
// Inconclusive, whatever the bounds. With both bounds nil any value passes, and with min > max
// none does; a NaN bound fails every value.
func Check(res Result, min, max *float64) Verdict {
	if res.Kind != KindValue {
		return Inconclusive
	}
	if min != nil && !(res.Value >= *min) {
		return Fail
	}
	if max != nil && !(res.Value <= *max) {
		return Fail
	}
	return Pass
}
