package rollout

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

const (
	pending     = meshv1alpha1.RolloutPending
	progressing = meshv1alpha1.RolloutProgressing
	paused      = meshv1alpha1.RolloutPaused
	promoted    = meshv1alpha1.RolloutPromoted
	rolledBack  = meshv1alpha1.RolloutRolledBack
	failed      = meshv1alpha1.RolloutFailed
	promoting   = PhasePromoting
)

// The sample's steps with a healthy canary: every step waits for its weight to be applied and one
// 30s interval at it, the pauses last as long as they say, pause{} waits for a promote, and the
// promotion moves all the traffic to the canary, copies the template, and returns it to stable.
func TestSampleHealthyCanaryIsPromoted(t *testing.T) {
	for _, roundTrip := range []bool{false, true} {
		t.Run(map[bool]string{false: "in memory", true: "state through JSON every step"}[roundTrip], func(t *testing.T) {
			w := newWorld(t, sampleSpec())
			w.roundTrip = roundTrip
			w.latest, w.canaryReady = "v2", false // a new template: the canary Deployment is scaled down
			w.runUntil(w.is(paused, 5, 60), time.Hour)
			w.runFor(10 * time.Minute) // pause{} holds, however long
			w.expect(paused, 5, 60)
			if c := w.condition(ConditionPaused); c.Status != metav1.ConditionTrue || c.Reason != "PauseStep" {
				t.Errorf("Paused condition = %+v", c)
			}
			w.request(RequestPromote, "2026-03-01T12:20:00Z")
			w.runUntil(w.is(promoted, 6, 0), time.Hour)

			want := []string{
				"t+0s Progressing step=0 weight=0", // v2 appears; the canary is scaled up
				"t+1s Progressing step=0 weight=10",
				"t+32s Progressing step=1 weight=10", // applied at t+2s, checked at t+32s
				"t+1m32s Progressing step=2 weight=30",
				"t+2m3s Progressing step=3 weight=30",
				"t+4m3s Progressing step=4 weight=60",
				"t+4m34s Paused step=5 weight=60",
				"t+14m34s Promoting step=6 weight=100", // the promote request
				"t+14m36s Promoting step=6 weight=0",   // the stable Deployment runs v2
				"t+14m37s Promoted step=6 weight=0",
			}
			if !reflect.DeepEqual(w.trace, want) {
				t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(w.trace, "\n"), strings.Join(want, "\n"))
			}
			if w.st.StableRevision != "v2" || w.stableRev != "v2" || w.canaryReplicas != 0 {
				t.Errorf("stable %s (Deployment %s), canary replicas %d; want v2 everywhere and the canary scaled down",
					w.st.StableRevision, w.stableRev, w.canaryReplicas)
			}
			for _, c := range []string{meshv1alpha1.ConditionReady, ConditionPromoted} {
				if got := w.condition(c); got.Status != metav1.ConditionTrue {
					t.Errorf("%s = %+v, want True", c, got)
				}
			}
			if got := w.condition(meshv1alpha1.ConditionReconciling); got.Status != "Absent" {
				t.Errorf("Reconciling = %+v, want absent once promoted", got)
			}
			if w.last.RequeueAfter != 0 {
				t.Errorf("RequeueAfter = %s once promoted, want 0", w.last.RequeueAfter)
			}
		})
	}
}

// A canary whose checks fail is rolled back at the (failureLimit+1)th failed check, and nothing
// ever touches the stable Deployment.
func TestFailingCanaryRollsBack(t *testing.T) {
	for _, limit := range []int32{0, 2, 4} {
		t.Run(fmt.Sprintf("failureLimit=%d", limit), func(t *testing.T) {
			spec := sampleSpec()
			spec.Analysis.FailureLimit = limit
			w := newWorld(t, spec)
			w.latest, w.analysis = "v2", func() outcome { return failing }
			w.runUntil(func() bool { return w.st.Phase == rolledBack }, time.Hour)
			if got := w.st.Analysis.FailedChecks; got != limit+1 {
				t.Errorf("rolled back after %d failed checks, want %d", got, limit+1)
			}
			w.expect(rolledBack, 0, 0)
			w.runFor(time.Minute)
			if w.canaryReplicas != 0 || *w.programmed != 0 {
				t.Errorf("canary replicas %d, programmed weight %d; want both 0", w.canaryReplicas, *w.programmed)
			}
			for _, a := range w.actions {
				if _, ok := a.(CopyTemplateToStable); ok {
					t.Errorf("a rollback copied a template to stable: %+v", a)
				}
			}
			if w.st.StableRevision != "v1" || w.stableRev != "v1" {
				t.Errorf("stable is %s (Deployment %s), want v1", w.st.StableRevision, w.stableRev)
			}
			if c := w.condition(ConditionAborted); c.Status != metav1.ConditionTrue || c.Reason != "AnalysisFailed" {
				t.Errorf("Aborted = %+v, want True/AnalysisFailed", c)
			}
			if c := w.condition(meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionTrue {
				t.Errorf("Stalled = %+v, want True", c)
			}
			if ev := w.st.Analysis.Metrics[0]; ev.Name != "success-rate" || len(ev.Results) != min(int(limit)+1, EvidencePerMetric) ||
				ev.Results[len(ev.Results)-1].Value != "91" || ev.Threshold != "min 99" {
				t.Errorf("evidence = %+v", ev)
			}
			if w.last.RequeueAfter != 0 {
				t.Errorf("RequeueAfter = %s while rolled back, want 0", w.last.RequeueAfter)
			}
			// A new revision starts afresh; the old evidence goes.
			w.latest, w.analysis = "v3", func() outcome { return healthy }
			w.step()
			if w.st.Phase != progressing || w.st.CanaryRevision != "v3" || w.st.Analysis.FailedChecks != 0 || len(w.st.Analysis.Metrics) != 0 {
				t.Errorf("after v3: %+v", w.st)
			}
		})
	}
}

// Inconclusive checks never let a run go on; errors abort it once MaxConsecutiveErrors come in a
// row, while too few requests or no data only make it wait.
func TestInconclusive(t *testing.T) {
	t.Run("too few requests: waits at the first weight forever", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.analysis = "v2", func() outcome { return quiet }
		w.runFor(6 * time.Hour)
		w.expect(progressing, 0, 10)
		if !strings.Contains(w.st.Message, "inconclusive") || w.st.Analysis.PassedChecks != 0 {
			t.Errorf("message %q, passed %d", w.st.Message, w.st.Analysis.PassedChecks)
		}
		if got := w.st.Analysis.Metrics[0].Results[0].Reason; got != ReasonTooFewRequests {
			t.Errorf("evidence reason = %s", got)
		}
		// Traffic picks up: the run moves on.
		w.analysis = func() outcome { return healthy }
		w.runUntil(w.is(progressing, 1, 10), time.Minute)
	})
	t.Run("a timed pause ends but the run does not go on while the last check is inconclusive", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.analysis = func() outcome { return noData }
		w.runFor(10 * time.Minute) // the pause is 1m
		w.expect(progressing, 1, 10)
		if !strings.Contains(w.st.Message, "the pause is over") {
			t.Errorf("message %q", w.st.Message)
		}
		w.analysis = func() outcome { return healthy }
		w.runUntil(w.is(progressing, 2, 30), time.Minute)
	})
	t.Run("errors abort after MaxConsecutiveErrors in a row", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.analysis = "v2", func() outcome { return broken }
		w.runUntil(func() bool { return w.st.Phase == rolledBack }, time.Hour)
		if w.st.AbortReason != "AnalysisErrors" || w.st.Analysis.ConsecutiveErrors != MaxConsecutiveErrors || w.st.CanaryWeight != 0 {
			t.Errorf("abort %s after %d errors, weight %d", w.st.AbortReason, w.st.Analysis.ConsecutiveErrors, w.st.CanaryWeight)
		}
		if ev := w.st.Analysis.Metrics[1].Results; len(ev) != EvidencePerMetric || ev[0].Error != broken.err {
			t.Errorf("evidence = %+v", ev)
		}
	})
	t.Run("errors that are not in a row do not abort", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		n := 0
		w.latest, w.analysis = "v2", func() outcome {
			n++
			if n%MaxConsecutiveErrors == 0 {
				return quiet
			}
			return broken
		}
		w.runFor(2 * time.Hour)
		w.expect(progressing, 0, 10)
		if w.st.Analysis.InconclusiveChecks < 100 {
			t.Errorf("only %d inconclusive checks", w.st.Analysis.InconclusiveChecks)
		}
	})
}

// A setWeight step ends only once the proxies apply its weight, and a whole interval after that.
func TestProgrammedWeightGatesTheStep(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 0, 10), time.Minute)
	w.proxiesFrozen = true
	w.programmed = ptr.To[int32](0)
	w.runFor(time.Hour) // passing checks keep coming, at the old weight
	w.expect(progressing, 0, 10)
	if !strings.Contains(w.st.Message, "waiting for the proxies to apply 10%") {
		t.Errorf("message %q", w.st.Message)
	}
	if !w.st.AnalysisDue(w.now.Add(time.Hour)) || w.st.WeightProgrammedAt != nil {
		t.Errorf("analysis should run and no weight be programmed: %+v", w.st.Analysis)
	}
	w.proxiesFrozen = false
	w.step() // SetWeight 10 is carried out now
	w.now = w.now.Add(time.Second)
	w.step()
	applied := w.now
	w.runUntil(w.is(progressing, 1, 10), time.Hour)
	if got := w.now.Sub(applied); got != 30*time.Second {
		t.Errorf("the step ended %s after its weight was applied, want one interval (30s)", got)
	}

	t.Run("without analysis the step ends once the weight is applied", func(t *testing.T) {
		spec := sampleSpec()
		spec.Analysis = nil
		w := newWorld(t, spec)
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Minute)
		if got := w.now.Sub(t0); got != 2*time.Second {
			t.Errorf("step 1 reached after %s, want 2s (scale up, set weight, see it applied)", got)
		}
	})
	t.Run("no weight for a canary that is not ready", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.canaryBroken = "v2", true
		w.runFor(30 * time.Minute)
		w.expect(progressing, 0, 0)
		if !strings.Contains(w.st.Message, "to be ready") {
			t.Errorf("message %q", w.st.Message)
		}
	})
}

func TestRequests(t *testing.T) {
	t.Run("promote skips the current step, once per ID", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPromote, "1")
		w.step()
		w.expect(progressing, 2, 30) // the next step's weight at once: the canary is ready
		w.runFor(10 * time.Second)   // the annotation stays; it is not applied again
		w.expect(progressing, 2, 30)
		w.request(RequestPromote, "2")
		w.step()
		w.expect(progressing, 3, 30)
		if len(w.st.HandledRequests) != 1 || w.st.HandledRequests[0] != (HandledRequest{RequestPromote, "2"}) {
			t.Errorf("handled = %+v", w.st.HandledRequests)
		}
	})
	t.Run("promote-full skips every step left", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPromoteFull, "x")
		w.step()
		w.expect(promoting, 6, 100)
		w.runUntil(w.is(promoted, 6, 0), time.Minute)
		if w.stableRev != "v2" || w.canaryReplicas != 0 {
			t.Errorf("stable %s, canary replicas %d", w.stableRev, w.canaryReplicas)
		}
	})
	t.Run("abort then retry", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.analysis = func() outcome { return failing }
		w.runUntil(func() bool { return w.st.Analysis.FailedChecks == 1 }, time.Hour)
		w.analysis = func() outcome { return healthy }
		w.runUntil(w.is(progressing, 2, 30), time.Hour)
		w.request(RequestAbort, "a1")
		w.step()
		w.expect(rolledBack, 2, 0)
		if c := w.condition(ConditionAborted); c.Reason != "AbortedByUser" || w.st.AbortReason != "AbortedByUser" {
			t.Errorf("Aborted = %+v", c)
		}
		w.runFor(time.Minute)
		if w.canaryReplicas != 0 {
			t.Errorf("the canary is not scaled down")
		}
		w.request(RequestRetry, "r1")
		w.step()
		w.expect(progressing, 0, 0)
		if w.st.CanaryRevision != "v2" || w.st.Analysis.FailedChecks != 0 || w.st.AbortReason != "" {
			t.Errorf("retry: %+v", w.st)
		}
		w.runUntil(w.is(paused, 5, 60), time.Hour)
	})
	t.Run("pause holds a timed pause past its end; resume starts it over", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPause, "p1")
		w.step()
		w.expect(paused, 1, 10)
		w.runFor(time.Hour)
		w.expect(paused, 1, 10)
		if c := w.condition(ConditionPaused); c.Reason != "PausedByUser" || c.Status != metav1.ConditionTrue {
			t.Errorf("Paused = %+v", c)
		}
		w.request(RequestResume, "r1")
		w.step()
		w.expect(progressing, 1, 10)
		resumed := w.now
		w.runUntil(w.is(progressing, 2, 30), time.Hour)
		if got := w.now.Sub(resumed); got < time.Minute {
			t.Errorf("the pause ended %s after the resume, want its whole minute", got)
		}
	})
	t.Run("a paused canary that fails is still rolled back; promote ends a pause", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPause, "p1")
		w.runFor(time.Hour)
		w.expect(paused, 1, 10)
		w.request(RequestPromote, "1")
		w.step()
		w.expect(progressing, 2, 30)
		if w.st.PausedByUser {
			t.Errorf("promote did not end the pause")
		}
		w.request(RequestPause, "p2")
		w.analysis = func() outcome { return failing }
		w.runUntil(func() bool { return w.st.Phase == rolledBack }, time.Hour)
		if w.st.AbortReason != "AnalysisFailed" {
			t.Errorf("abort reason %s", w.st.AbortReason)
		}
	})
	t.Run("a pause holds a new revision at step 0", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.request(RequestPause, "p1")
		w.step()
		w.expect(promoted, 6, 0)
		if c := w.condition(ConditionPaused); c.Status != metav1.ConditionTrue {
			t.Errorf("Paused = %+v", c)
		}
		w.latest = "v2"
		w.runFor(time.Hour)
		w.expect(paused, 0, 0)
		w.request(RequestResume, "r1")
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
	})
	t.Run("requests that do not apply are ignored for good", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.request(RequestPromote, "early")
		w.request(RequestAbort, "early")
		w.request(RequestRetry, "early")
		w.request(RequestResume, "early")
		w.step()
		w.expect(promoted, 6, 0)
		ignored := 0
		for _, e := range w.events {
			if e.Reason == "RequestIgnored" && e.Type == EventWarning {
				ignored++
			}
		}
		if ignored != 4 {
			t.Errorf("%d RequestIgnored events, want 4: %+v", ignored, w.events)
		}
		// The stale promote does not skip a step of the next run.
		w.latest = "v2"
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		if got := w.now.Sub(t0); got != 32*time.Second {
			t.Errorf("step 1 reached at t+%s; the stale promote skipped the wait", got)
		}
	})
	t.Run("abort during a promotion that has not reached stable", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.canaryBroken = "v2", true
		w.step()
		w.request(RequestPromoteFull, "1")
		w.runFor(time.Minute)
		w.expect(promoting, 6, 0)
		w.request(RequestAbort, "1")
		w.step()
		w.expect(rolledBack, 6, 0)
		if w.stableRev != "v1" {
			t.Errorf("stable Deployment %s", w.stableRev)
		}
	})
	t.Run("abort during the promotion is ignored", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.stableFrozen = true
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPromoteFull, "1")
		w.runUntil(func() bool { return w.stableRev == "v2" }, time.Minute)
		w.request(RequestAbort, "1")
		w.step()
		w.expect(promoting, 6, 100)
		if !w.hasEvent("RequestIgnored") {
			t.Errorf("no RequestIgnored event")
		}
		w.stableReady = true
		w.runUntil(w.is(promoted, 6, 0), time.Minute)
	})
}

// A new revision mid-run starts the run over on it, from step 0 at weight 0, with fresh analysis.
func TestNewRevisionRestartsTheRun(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.analysis = func() outcome { return failing }
	w.runUntil(func() bool { return w.st.Analysis.FailedChecks == 1 }, time.Hour)
	w.analysis = func() outcome { return healthy }
	w.runUntil(w.is(progressing, 3, 30), time.Hour)
	w.latest, w.canaryReady = "v3", false // the Deployment rolls its pods to v3
	w.step()
	w.expect(progressing, 0, 0)
	if w.st.CanaryRevision != "v3" || w.st.Analysis.FailedChecks != 0 || w.st.Analysis.PassedChecks != 0 || !w.hasEvent("RunRestarted") {
		t.Errorf("after v3: %+v", w.st)
	}
	if a := w.last.Actions[0]; a != (SetWeight{Weight: 0}) {
		t.Errorf("first action = %+v, want SetWeight 0", a)
	}
	w.canaryReady = true
	w.runUntil(w.is(paused, 5, 60), time.Hour)

	t.Run("during a promotion: the promotion ends first", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.stableFrozen = "v2", true
		w.runUntil(w.is(progressing, 1, 10), time.Hour)
		w.request(RequestPromoteFull, "1")
		w.runUntil(func() bool { return w.stableRev == "v2" }, time.Minute)
		w.latest = "v3"
		w.runFor(time.Minute)
		w.expect(promoting, 6, 100)
		w.stableReady = true
		w.runUntil(func() bool { return w.st.CanaryRevision == "v3" }, time.Minute)
		if w.st.StableRevision != "v2" || !isRunning(w.st.Phase) {
			t.Errorf("stable %s, phase %s; want v2 and a run of v3", w.st.StableRevision, w.st.Phase)
		}
	})
	t.Run("before a promotion reaches stable, the new revision replaces it", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest, w.canaryBroken = "v2", true
		w.step()
		w.request(RequestPromoteFull, "1")
		w.runFor(time.Minute)
		w.expect(promoting, 6, 0) // all the traffic cannot go to a canary that is not ready
		w.latest, w.canaryBroken = "v3", false
		w.step()
		w.expect(progressing, 0, 0)
		if w.st.CanaryRevision != "v3" || w.stableRev != "v1" {
			t.Errorf("run of %s, stable Deployment %s", w.st.CanaryRevision, w.stableRev)
		}
	})
	t.Run("mid-run, back to the stable template", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 2, 30), time.Hour)
		w.latest = "v1"
		w.step()
		w.expect(promoted, 6, 0)
		if w.st.CanaryRevision != "v1" || !w.hasEvent("RevertedToStable") {
			t.Errorf("%+v", w.st)
		}
		w.runFor(time.Minute)
		if w.canaryReplicas != 0 {
			t.Errorf("the canary is not scaled down")
		}
	})
	t.Run("after a rollback, back to the stable template", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.analysis = func() outcome { return failing }
		w.runUntil(func() bool { return w.st.Phase == rolledBack }, time.Hour)
		w.latest = "v1"
		w.step()
		w.expect(promoted, 6, 0)
		if w.st.CanaryRevision != "v1" || !w.hasEvent("RevertedToStable") {
			t.Errorf("%+v", w.st)
		}
	})
}

// An operator restart hands the stored State back: the run goes on at the same step and weight,
// and repeated Steps with nothing new change nothing.
func TestRestartResumesWhereItWas(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 3, 30), time.Hour)
	w.runFor(40 * time.Second) // into the 2m pause
	data, err := json.Marshal(w.st)
	if err != nil {
		t.Fatal(err)
	}
	var stored State
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	w.now = w.lastAt
	in := w.input()
	in.State, in.Checks = stored, nil
	d := Step(in)
	if d.State.Phase != progressing || d.State.CurrentStepIndex != 3 || d.State.CanaryWeight != 30 {
		t.Fatalf("after restart: %s step=%d weight=%d", d.State.Phase, d.State.CurrentStepIndex, d.State.CanaryWeight)
	}
	if !d.State.StepStartedAt.Equal(w.st.StepStartedAt) || d.State.Analysis.FailedChecks != w.st.Analysis.FailedChecks ||
		len(d.State.Analysis.Metrics) != 3 {
		t.Errorf("the restart lost state: %+v", d.State)
	}
	for _, a := range d.Actions {
		if _, ok := a.(Event); !ok {
			t.Errorf("a restart with nothing new asked for %+v", a)
		}
	}
	if d.RequeueAfter != w.last.RequeueAfter {
		t.Errorf("RequeueAfter %s, before the restart %s", d.RequeueAfter, w.last.RequeueAfter)
	}
}

// The steps change mid-run: the run starts over from step 0 on the same revision.
func TestStepsChangeRestartsTheRun(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 3, 30), time.Hour)
	w.spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{weight(50), manualPause()}
	w.step()
	w.expect(progressing, 0, 50) // the canary is ready: the new step 0's weight at once
	if w.st.CanaryRevision != "v2" || !w.hasEvent("StepsChanged") {
		t.Errorf("%+v", w.st)
	}
	w.runUntil(w.is(paused, 1, 50), time.Hour)
	// Analysis settings are not steps: changing them does not restart.
	w.spec.Analysis.FailureLimit = 7
	w.step()
	w.expect(paused, 1, 50)
}

// A new Rollout: without a stable Deployment the user's keeps all the traffic until its template
// runs in the stable one; with a ready stable Deployment the engine adopts it.
func TestFirstRollout(t *testing.T) {
	t.Run("initialize", func(t *testing.T) {
		w := &world{t: t, spec: sampleSpec(), now: t0, latest: "v1", canaryReplicas: 3, canaryReady: true,
			requests: map[RequestKind]string{}, analysis: func() outcome { return healthy }}
		w.step()
		w.expect(promoting, 6, 100)
		if !w.hasEvent("Initializing") {
			t.Errorf("events %+v", w.events)
		}
		w.runUntil(w.is(promoted, 6, 0), time.Minute)
		want := []string{"t+0s Promoting step=6 weight=100", "t+1s Promoting step=6 weight=0", "t+2s Promoted step=6 weight=0"}
		if !reflect.DeepEqual(w.trace, want) {
			t.Errorf("trace %q, want %q", w.trace, want)
		}
		w.runFor(time.Minute)
		if w.canaryReplicas != 0 || w.stableRev != "v1" {
			t.Errorf("canary replicas %d, stable %s", w.canaryReplicas, w.stableRev)
		}
	})
	t.Run("adopt a ready stable Deployment", func(t *testing.T) {
		for _, latest := range []string{"v1", "v2"} {
			in := Input{Now: t0, Spec: sampleSpec(), Canary: Workload{Revision: latest, Replicas: 3, Ready: true},
				Stable: Workload{Revision: "v1", Replicas: 3, Ready: true}}
			d := Step(in)
			want := map[string]meshv1alpha1.RolloutPhase{"v1": promoted, "v2": progressing}[latest]
			if d.State.Phase != want || d.State.StableRevision != "v1" || d.State.CanaryRevision != latest {
				t.Errorf("latest %s: %+v", latest, d.State)
			}
		}
	})
	t.Run("no Deployment yet", func(t *testing.T) {
		d := Step(Input{Now: t0, Spec: sampleSpec()})
		if d.State.Phase != pending || len(d.Actions) != 0 || !strings.Contains(d.State.Message, "waiting for Deployment checkout") {
			t.Errorf("%+v", d)
		}
	})
}

// A configuration problem fails the rollout, sends all the traffic to stable, and heals with the
// spec.
func TestFailed(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 2, 30), time.Hour)
	good := w.spec
	w.spec.Analysis = &meshv1alpha1.Analysis{Metrics: nil}
	w.step()
	w.expect(failed, 2, 0)
	if c := w.condition(meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionTrue || c.Reason != "InvalidSpec" {
		t.Errorf("Stalled = %+v", c)
	}
	if w.last.RequeueAfter != 0 {
		t.Errorf("RequeueAfter %s", w.last.RequeueAfter)
	}
	w.spec = good
	w.step()
	w.expect(progressing, 0, 10)

	t.Run("the Deployment disappears", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.runUntil(w.is(progressing, 2, 30), time.Hour)
		w.latest = ""
		w.step()
		w.expect(failed, 2, 0)
		if w.st.FailureReason != "TargetNotFound" {
			t.Errorf("reason %s", w.st.FailureReason)
		}
		w.latest = "v2"
		w.step()
		w.expect(progressing, 0, 10)
	})
	t.Run("an aborted revision stays rolled back", func(t *testing.T) {
		w := newWorld(t, sampleSpec())
		w.latest = "v2"
		w.analysis = func() outcome { return failing }
		w.runUntil(func() bool { return w.st.Phase == rolledBack }, time.Hour)
		w.latest = ""
		w.step()
		w.expect(failed, 0, 0)
		w.latest = "v2"
		w.step()
		w.expect(rolledBack, 0, 0)
	})
}

func TestRequeueAfter(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.latest = "v2"
	w.runUntil(w.is(progressing, 1, 10), time.Hour)
	if w.last.RequeueAfter != 30*time.Second {
		t.Errorf("at the start of the 1m pause with checks every 30s: %s", w.last.RequeueAfter)
	}
	spec := sampleSpec()
	spec.Analysis = nil
	w = newWorld(t, spec)
	w.latest = "v2"
	w.runUntil(w.is(progressing, 1, 10), time.Hour)
	if w.last.RequeueAfter != time.Minute {
		t.Errorf("at the start of the 1m pause without analysis: %s", w.last.RequeueAfter)
	}
	w.now = w.now.Add(1500 * time.Millisecond)
	w.step()
	if w.last.RequeueAfter != 58500*time.Millisecond {
		t.Errorf("1.5s later: %s", w.last.RequeueAfter)
	}
}

// Checks keep to their schedule when every reconcile runs late: a failing canary is rolled back
// within interval × (failureLimit + 1) of its weight being applied, plus the lag and the status's
// whole second, not one second later for every check.
func TestLateChecksKeepTheSchedule(t *testing.T) {
	w := newWorld(t, sampleSpec())
	w.lag = 700 * time.Millisecond
	w.analysis = func() outcome { return failing }
	w.latest = "v2"
	w.runUntil(func() bool { return w.st.WeightProgrammedAt != nil }, time.Hour)
	applied := w.now
	w.runUntil(w.is(rolledBack, 0, 0), time.Hour)
	interval := w.spec.Analysis.Interval.Duration
	limit := interval*time.Duration(w.spec.Analysis.FailureLimit+1) + time.Second + w.lag
	if took := w.now.Sub(applied); took > limit {
		t.Errorf("rolled back %s after the weight was applied, want within %s", took, limit)
	}
}
