package demoapp

import (
	"sync/atomic"
	"time"
)

// faults decides which calls fail and how long each takes. It is read on every call and may be
// changed at any time, so a test can make a running canary go bad.
type faults struct {
	percent atomic.Int64
	latency atomic.Int64 // nanoseconds
	calls   atomic.Uint64
}

// fail counts a call and says whether it must fail. Call n (from 0) fails when it carries the
// running total of failures, floor((n+1)·p/100), past floor(n·p/100): exactly p calls in every
// 100 in a row, spread evenly (with p = 20, every 5th call).
func (f *faults) fail() bool {
	p := uint64(f.percent.Load())
	n := f.calls.Add(1) - 1
	return (n+1)*p/100 > n*p/100
}

func (f *faults) delay() time.Duration { return time.Duration(f.latency.Load()) }
