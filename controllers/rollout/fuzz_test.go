package rollout

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// invariants are what every Decision must satisfy, whatever the Input.
func invariants(in Input, d Decision) error {
	st := d.State
	n := int32(0)
	if c := in.Spec.Strategy.Canary; c != nil {
		n = int32(len(c.Steps))
	}
	if st.CanaryWeight < 0 || st.CanaryWeight > 100 {
		return fmt.Errorf("weight %d out of 0..100", st.CanaryWeight)
	}
	if st.CurrentStepIndex < 0 || st.CurrentStepIndex > n {
		return fmt.Errorf("step index %d out of 0..%d", st.CurrentStepIndex, n)
	}
	switch st.Phase {
	case pending, progressing, paused, promoting, promoted, rolledBack, failed:
	default:
		return fmt.Errorf("unknown phase %q", st.Phase)
	}
	if st.Phase == rolledBack && st.CanaryWeight != 0 {
		return fmt.Errorf("rolled back with weight %d", st.CanaryWeight)
	}
	if st.Phase == promoted && (st.CanaryWeight != 0 || st.StableRevision != st.CanaryRevision || st.StableRevision != in.Canary.Revision) {
		return fmt.Errorf("promoted with weight %d, stable %q, run %q, latest %q", st.CanaryWeight, st.StableRevision, st.CanaryRevision, in.Canary.Revision)
	}
	if isRunning(st.Phase) && (st.StableRevision == "" || st.CanaryRevision != in.Canary.Revision || st.StableRevision == st.CanaryRevision) {
		return fmt.Errorf("running %q (latest %q) against stable %q", st.CanaryRevision, in.Canary.Revision, st.StableRevision)
	}
	if st.Phase == promoting && st.CurrentStepIndex != n {
		return fmt.Errorf("promoting at step %d of %d", st.CurrentStepIndex, n)
	}
	if d.RequeueAfter < 0 {
		return fmt.Errorf("RequeueAfter %s", d.RequeueAfter)
	}
	for _, m := range st.Analysis.Metrics {
		if len(m.Results) > EvidencePerMetric {
			return fmt.Errorf("%d results kept for %s", len(m.Results), m.Name)
		}
	}
	for _, a := range d.Actions {
		if sw, ok := a.(SetWeight); ok && sw.Weight != st.CanaryWeight {
			return fmt.Errorf("SetWeight %d but the state says %d", sw.Weight, st.CanaryWeight)
		}
	}
	// Ready, Promoted, Progressing, Paused, Aborted, and Reconciling or Stalled unless idle.
	if want := map[bool]int{true: 5, false: 6}[st.Phase == promoted]; len(d.Conditions) != want {
		return fmt.Errorf("%d conditions, want %d: %+v", len(d.Conditions), want, d.Conditions)
	}

	// The same Input gives the same Decision (and Step did not write into its Input).
	if again := Step(in); !reflect.DeepEqual(again, d) {
		return fmt.Errorf("not deterministic:\n%+v\n%+v", d, again)
	}
	// The State survives the Rollout's status as the API server stores it.
	// (Compared as JSON: metav1.Time reads back in time.Local, and empty lists as nil.)
	if back, err := statusRoundTrip(d.State); err != nil {
		return err
	} else if !sameJSON(back, d.State) {
		return fmt.Errorf("the state does not survive the status:\n%+v\n%+v", d.State, back)
	}
	// An operator restart, or a reconcile with nothing new, changes nothing.
	in2 := in
	in2.State = d.State
	if again := Step(in2); !reflect.DeepEqual(again.State, d.State) {
		return fmt.Errorf("the decided state is not a fixed point:\n%+v\n%+v", d.State, again.State)
	}
	// An abort of a running canary sends all the traffic to stable.
	if isRunning(st.Phase) {
		in3 := in2
		in3.Checks = nil
		in3.Requests = []Request{{Kind: RequestAbort, ID: "probe-" + st.handled(RequestAbort)}}
		if ab := Step(in3); ab.State.Phase != rolledBack || ab.State.CanaryWeight != 0 || ab.State.AbortReason != "AbortedByUser" {
			return fmt.Errorf("abort gave %s weight %d", ab.State.Phase, ab.State.CanaryWeight)
		}
	}
	return nil
}

// fuzzBytes reads choices from the fuzzer's bytes; past their end every choice is 0.
type fuzzBytes struct {
	data []byte
}

func (f *fuzzBytes) next() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

func (f *fuzzBytes) intn(n int) int { return int(f.next()) % n }

func pick[T any](f *fuzzBytes, options ...T) T { return options[f.intn(len(options))] }

func (f *fuzzBytes) spec() meshv1alpha1.RolloutSpec {
	spec := sampleSpec()
	steps := make([]meshv1alpha1.CanaryStep, 1+f.intn(7))
	for i := range steps {
		switch f.intn(4) {
		case 0, 1:
			steps[i] = weight(pick[int32](f, 0, 10, 25, 50, 60, 100, 10, 30, 101, -1, 50, 75, 100, 1, 99, 40))
		case 2:
			steps[i] = pause(pick(f, 0, time.Second, 30*time.Second, time.Minute, 90*time.Second, -time.Second, 10*time.Second, time.Hour))
		default:
			steps[i] = manualPause()
		}
	}
	spec.Strategy.Canary.Steps = steps
	switch f.intn(4) {
	case 0:
		spec.Analysis = nil
	case 1:
		spec.Analysis.Interval = pick(f, nil, &metav1.Duration{Duration: 10 * time.Second}, &metav1.Duration{},
			&metav1.Duration{Duration: time.Minute})
		spec.Analysis.FailureLimit = int32(f.intn(4))
		spec.Analysis.MinRequests = pick(f, nil, ptr.To[int32](0), ptr.To[int32](50))
		spec.Analysis.Metrics = spec.Analysis.Metrics[:1+f.intn(3)]
	}
	return spec
}

func (f *fuzzBytes) results(spec meshv1alpha1.RolloutSpec) []MetricResult {
	if spec.Analysis == nil {
		return nil
	}
	var out []MetricResult
	for _, m := range spec.Analysis.Metrics {
		if f.intn(8) == 0 {
			continue // missing from the check
		}
		r := MetricResult{Name: m.Name, Query: "q", Value: pick(f, 1.0, 99.5, math.NaN(), math.Inf(1), 1000, -3)}
		r.Verdict = pick(f, VerdictPass, VerdictPass, VerdictFail, VerdictInconclusive, "Bogus")
		if r.Verdict == VerdictInconclusive {
			r.Reason = pick(f, ReasonNoData, ReasonNaN, ReasonTooFewRequests, ReasonError, "")
			r.Error = pick(f, "", "boom")
		}
		out = append(out, r)
	}
	return out
}

// FuzzStep drives the engine through random histories of a cluster that mostly does what it is
// told (but not always, not at once, and sometimes something else), with random checks, requests,
// spec edits and damaged states, and checks the invariants after every Step.
//
//	go test ./controllers/rollout/ -run '^$' -fuzz FuzzStep -fuzztime 60s
func FuzzStep(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte("\x05\x00\x01\x02\x00\x03\x01\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09"))
	f.Add([]byte("\x02\x00\x00\x06\x01\x05\x05\x05\x05\x05\x05\x05\x06\x06\x06\x06\x06\x06\x06\x06\x06\x00\x00\x00"))
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{data: data}
		spec := fb.spec()
		now := t0
		var st State
		latest, canaryReplicas, canaryReady := "v1", int32(3), true
		stableRev, stableReady := "", false
		var programmed *int32
		for range 1 + fb.intn(60) {
			in := Input{Now: now, Generation: 1, Spec: spec, State: st,
				Canary:           Workload{Revision: latest, Replicas: canaryReplicas, Ready: canaryReady},
				Stable:           Workload{Revision: stableRev, Replicas: 3, Ready: stableReady},
				ProgrammedWeight: programmed}
			switch fb.intn(12) {
			case 0:
				latest = pick(fb, "v1", "v2", "v3", "")
				in.Canary.Revision, in.Canary.Ready = latest, fb.intn(2) == 0
			case 1:
				in.Requests = append(in.Requests, Request{
					Kind: pick(fb, RequestPromote, RequestPromoteFull, RequestAbort, RequestRetry, RequestPause, RequestResume, "bogus"),
					ID:   pick(fb, "1", "2", "", "3")})
			case 2:
				in.ProgrammedWeight = pick(fb, nil, ptr.To[int32](0), ptr.To[int32](100), ptr.To[int32](37))
			case 3:
				spec = fb.spec()
				in.Spec = spec
			case 4:
				// A damaged or foreign State.
				in.State.Phase = pick[meshv1alpha1.RolloutPhase](fb, "", "Weird", pending, progressing, paused, promoting, promoted, rolledBack, failed)
				in.State.CurrentStepIndex = int32(fb.intn(20)) - 5
				in.State.CanaryWeight = int32(fb.intn(250)) - 50
				in.State.StableRevision = pick(fb, in.State.StableRevision, "", "v1", "v2")
				in.State.CanaryRevision = pick(fb, in.State.CanaryRevision, "", "v1", "v2", "v3")
			case 5:
				in.Stable = Workload{Revision: pick(fb, "", "v1", "v2", "v3"), Replicas: 3, Ready: fb.intn(2) == 0}
			}
			for range fb.intn(3) {
				in.Checks = append(in.Checks, Check{
					Time:     now.Add(-time.Duration(fb.intn(90)) * time.Second),
					Revision: pick(fb, "", latest, "v9"),
					Requests: pick(fb, ptr.To[int64](500), nil, ptr.To[int64](1)),
					Metrics:  fb.results(spec),
				})
			}

			d := Step(in)
			if err := invariants(in, d); err != nil {
				t.Fatalf("%v\ninput: %+v", err, in)
			}

			// The cluster carries the actions out, or some of them.
			st = d.State
			obey := fb.intn(4) != 0
			for _, a := range d.Actions {
				if !obey {
					break
				}
				switch a := a.(type) {
				case SetWeight:
					programmed = ptr.To(a.Weight)
				case ScaleCanary:
					canaryReplicas, canaryReady = 0, false
					if a.Up {
						canaryReplicas, canaryReady = 3, true
					}
				case CopyTemplateToStable:
					stableRev, stableReady = a.Revision, true
				}
			}
			now = now.Add(pick(fb, time.Second, d.RequeueAfter, 30*time.Second, 1500*time.Millisecond, 10*time.Minute, 0))
		}
	})
}
