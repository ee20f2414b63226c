package promquery

import (
	"math"
	"testing"
)

func TestCheck(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	value := func(v float64) Result { return Result{Kind: KindValue, Value: v, Samples: 1} }
	tests := []struct {
		name     string
		res      Result
		min, max *float64
		want     Verdict
	}{
		{"within both bounds", value(0.5), f(0), f(1), Pass},
		{"on the lower bound", value(0), f(0), f(1), Pass},
		{"on the upper bound", value(1), f(0), f(1), Pass},
		{"below the lower bound", value(-0.1), f(0), f(1), Fail},
		{"above the upper bound", value(1.1), f(0), f(1), Fail},
		{"max only, below", value(0.01), nil, f(0.05), Pass},
		{"max only, above", value(0.06), nil, f(0.05), Fail},
		{"min only, above", value(0.99), f(0.95), nil, Pass},
		{"min only, below", value(0.9), f(0.95), nil, Fail},
		{"no bounds", value(42), nil, nil, Pass},
		{"min above max", value(0.5), f(1), f(0), Fail},
		{"NaN bound", value(0.5), f(math.NaN()), nil, Fail},
		{"zero value is a value", value(0), nil, f(0), Pass},
		{"no data, no bounds", Result{Kind: KindNoData}, nil, nil, Inconclusive},
		{"no data would pass a max", Result{Kind: KindNoData}, nil, f(1), Inconclusive},
		{"NaN", Result{Kind: KindNaN, Value: math.NaN(), Samples: 1}, nil, f(1), Inconclusive},
		{"+Inf above max", Result{Kind: KindNaN, Value: math.Inf(1), Samples: 1}, nil, f(1), Inconclusive},
		{"-Inf would pass a max", Result{Kind: KindNaN, Value: math.Inf(-1), Samples: 1}, nil, f(1), Inconclusive},
		{"error with a zero value", Result{Kind: KindError}, nil, f(1), Inconclusive},
		{"error with a value in range", Result{Kind: KindError, Value: 0.5, Samples: 2}, f(0), f(1), Inconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Check(tt.res, tt.min, tt.max); got != tt.want {
				t.Errorf("Check(%+v) = %v, want %v", tt.res, got, tt.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[Verdict]string{Pass: "Pass", Fail: "Fail", Inconclusive: "Inconclusive", 9: "Verdict(9)"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict %d: String() = %q, want %q", int(v), got, want)
		}
	}
	for k, want := range map[Kind]string{KindValue: "Value", KindNoData: "NoData", KindNaN: "NaN", KindError: "Error", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind %d: String() = %q, want %q", int(k), got, want)
		}
	}
}
