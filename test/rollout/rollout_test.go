package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// interval is the analysis interval of every test: short, so that a run takes seconds, and long
// enough for a few scrapes (every 500 ms) inside each rate window.
const interval = 3 * time.Second

// setUp deploys v1 of the app with a Rollout and waits until v1 is stable: the Rollout created
// <name>-primary from the user's Deployment and scaled the Deployment to zero. It returns the
// Rollout's status history.
func setUp(t *testing.T, ns string, an *meshv1alpha1.Analysis, steps ...meshv1alpha1.CanaryStep) *history {
	t.Helper()
	runPods(t, ns)
	deployApp(t, ns, "checkout", 2, "v1", 0)
	createRollout(t, ns, "checkout", an, steps...)
	h := watchRollout(t, ns, "checkout")
	ro := waitRollout(t, ns, "checkout", time.Minute, "Promoted with v1", inPhase(meshv1alpha1.RolloutPromoted))
	h.v1 = ro.Status.StableRevision
	primary := deployment(t, ns, "checkout-primary")
	if primary.Status.AvailableReplicas != 2 {
		t.Fatalf("checkout-primary has %d available replicas, want 2", primary.Status.AvailableReplicas)
	}
	eventually(t, 30*time.Second, func() error {
		if n := ptr.Deref(deployment(t, ns, "checkout").Spec.Replicas, 1); n != 0 {
			return fmt.Errorf("the user's Deployment still has %d replicas once v1 is stable", n)
		}
		return nil
	})
	return h
}

// promotedOtherThan is true once a revision other than old is promoted.
func promotedOtherThan(old string) func(*meshv1alpha1.Rollout) bool {
	return func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPromoted && ro.Status.StableRevision != old &&
			ro.Status.CanaryRevision == ro.Status.StableRevision
	}
}

func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d))
	return d
}

// allOn waits until every one of n calls is answered by version.
func allOn(t *testing.T, ns, version string) {
	t.Helper()
	c := newClient(t, ns, "checkout")
	eventually(t, 30*time.Second, func() error {
		if counts := split(t, c, 50); counts[version] != 50 {
			return fmt.Errorf("want every call on %s: %v", version, counts)
		}
		return nil
	})
}

// A healthy canary walks every step, each weight reaching the proxies before the next, and is
// promoted: stable takes the new template and all the traffic, the canary scales to zero, and
// users see no failed call.
func TestHealthyCanaryIsPromoted(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "healthy")
	h := setUp(t, ns, analysisSpec(interval, 1, 95, ""), setWeight(20), pauseFor(time.Second), setWeight(50), setWeight(80))
	allOn(t, ns, "v1")
	users := startLoad(t, newClient(t, ns, "checkout"), 10*time.Millisecond)

	started := time.Now()
	release(t, ns, "checkout", "v2", 0)
	// As a CI pipeline would wait for the release.
	waitRollout(t, ns, "checkout", time.Minute, "Progressing", inPhase(meshv1alpha1.RolloutProgressing))
	if out, err := env.Kubectl("wait", "-n", ns, "--for=condition=Promoted", "rollout/checkout", "--timeout=2m"); err != nil {
		t.Fatalf("kubectl wait: %v\n%s", err, out)
	}
	ro := waitRollout(t, ns, "checkout", 10*time.Second, "Promoted with v2", promotedOtherThan(h.v1))
	h.add(snapshotOf(ro)) // the history's own poll may not have seen it yet
	t.Logf("promoted %s after %s", ro.Status.StableRevision, time.Since(started).Round(100*time.Millisecond))

	// Every weight was set in order, then 100 % while stable rolled, then back to stable.
	var weights []int32
	for _, s := range h.all() {
		if s.at.Before(started) || (len(weights) > 0 && weights[len(weights)-1] == s.weight) {
			continue
		}
		weights = append(weights, s.weight)
	}
	if got := fmt.Sprint(weights); got != "[0 20 50 80 100 0]" {
		t.Errorf("weights went %s, want [0 20 50 80 100 0]", got)
	}
	if ro.Status.Analysis == nil || len(ro.Status.Analysis.Metrics) != 2 {
		t.Fatalf("no evidence in status: %+v", ro.Status.Analysis)
	}
	if ro.Status.Analysis.PassedChecks < 3 || ro.Status.Analysis.FailedChecks != 0 {
		t.Errorf("checks: %d passed, %d failed; want every weight's check passed", ro.Status.Analysis.PassedChecks, ro.Status.Analysis.FailedChecks)
	}
	for _, m := range ro.Status.Analysis.Metrics {
		last := m.Results[len(m.Results)-1]
		t.Logf("%s: %s = %s (%s), query %s", m.Name, last.Verdict, last.Value, m.Threshold, m.Query)
	}
	if c := condition(ro, meshv1alpha1.ConditionReady); !strings.HasPrefix(c, "True") {
		t.Errorf("Ready is %s", c)
	}

	allOn(t, ns, "v2")
	eventually(t, 30*time.Second, func() error {
		if n := ptr.Deref(deployment(t, ns, "checkout").Spec.Replicas, 1); n != 0 {
			return fmt.Errorf("the canary still has %d replicas", n)
		}
		return nil
	})
	users.mu.Lock()
	defer users.mu.Unlock()
	if users.failures > 0 {
		t.Errorf("%d of the users' calls failed during the release: %v; %q", users.failures, users.byServer, users.errors)
	}
	t.Logf("users' calls: %v, %d failed", users.byServer, users.failures)
	for _, reason := range []string{"RunStarted", "WeightChanged", "StepCompleted", "Promoted"} {
		if !hasEvent(t, ns, "checkout", reason) {
			t.Errorf("no %s event on the Rollout", reason)
		}
	}
}

// A canary failing 20 % of its calls is rolled back by the analysis within interval ×
// failureLimit plus one interval of getting traffic; the stable pods are never touched.
func TestFailingCanaryIsRolledBack(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "failing")
	const failureLimit = 1
	h := setUp(t, ns, analysisSpec(interval, failureLimit, 95, ""), setWeight(20), setWeight(50), setWeight(80))
	stableGeneration := deployment(t, ns, "checkout-primary").Generation
	startLoad(t, newClient(t, ns, "checkout"), 10*time.Millisecond)

	started := time.Now()
	release(t, ns, "checkout", "v2-bad", 20)
	ro := waitRollout(t, ns, "checkout", 2*time.Minute, "RolledBack", inPhase(meshv1alpha1.RolloutRolledBack))
	h.add(snapshotOf(ro)) // the history's own poll may not have seen it yet
	if ro.Status.AbortReason != "AnalysisFailed" || ro.Status.CanaryWeight != 0 {
		t.Errorf("rolled back with reason %q weight %d, want AnalysisFailed and 0", ro.Status.AbortReason, ro.Status.CanaryWeight)
	}
	// The canary gets traffic once the proxies apply its weight: the status stops waiting for them.
	got20, ok := h.first(started, func(s snapshot) bool {
		return s.weight == 20 && !strings.Contains(s.msg, "waiting for the proxies")
	})
	back, rolledBack := h.first(started, func(s snapshot) bool { return s.phase == meshv1alpha1.RolloutRolledBack })
	if !ok || !rolledBack {
		t.Fatalf("the canary never got 20 %% (%v) or was not rolled back (%v)", ok, rolledBack)
	}
	// The bound, plus what the status's whole seconds and the polling add. A check whose window
	// holds too few of the canary's requests waits (it never passes) and delays the rollback by
	// an interval: a new pod's counters appear with its first call, and Prometheus cannot count
	// the calls before its first scrape of them. On a loaded machine the first check or two can
	// be such; more would mean the analysis does not see the canary.
	waited := int32(0)
	if ro.Status.Analysis != nil {
		waited = ro.Status.Analysis.InconclusiveChecks
	}
	if waited > 2 {
		t.Errorf("%d checks were inconclusive before the rollback", waited)
	}
	limit := interval*time.Duration(failureLimit+1+waited) + 2*time.Second
	if took := back.at.Sub(got20.at); took > limit {
		t.Errorf("rolled back %s after the canary got traffic, with %d inconclusive checks; want within %s", took, waited, limit)
	} else {
		t.Logf("rolled back %s after the canary got traffic, %d inconclusive checks (limit %s)", took.Round(10*time.Millisecond), waited, limit)
	}
	if c := condition(ro, "Aborted"); !strings.HasPrefix(c, "True/AnalysisFailed") {
		t.Errorf("Aborted is %s", c)
	}
	if ro.Status.Analysis == nil || ro.Status.Analysis.FailedChecks != failureLimit+1 {
		t.Errorf("analysis: %+v", ro.Status.Analysis)
	}
	allOn(t, ns, "v1")
	if g := deployment(t, ns, "checkout-primary").Generation; g != stableGeneration {
		t.Errorf("the stable Deployment changed (generation %d → %d) during a rolled back run", stableGeneration, g)
	}
	eventually(t, 30*time.Second, func() error {
		if n := ptr.Deref(deployment(t, ns, "checkout").Spec.Replicas, 1); n != 0 {
			return fmt.Errorf("the failed canary still has %d replicas", n)
		}
		return nil
	})
	if !hasEvent(t, ns, "checkout", "RolledBack") {
		t.Error("no RolledBack event")
	}
}

// pause: {} holds the canary at its weight until a person promotes it; abort then sends every
// call back to stable.
func TestPauseHoldsUntilPromotedAndAbortReturnsToStable(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "manual")
	setUp(t, ns, analysisSpec(interval, 2, 95, ""), setWeight(30), pauseUntilPromoted(), setWeight(60), pauseUntilPromoted())
	ro := getRollout(t, ns, "checkout")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Strategy.Canary.HeaderRoute = &meshv1alpha1.HeaderMatch{Name: "x-canary", Exact: ptr.To("yes")}
	must(t, k8s.Patch(context.Background(), ro, patch))
	c := newClient(t, ns, "checkout")
	startLoad(t, c, 10*time.Millisecond)

	release(t, ns, "checkout", "v2", 0)
	waitRollout(t, ns, "checkout", time.Minute, "paused at 30 %", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(1, 30)(ro)
	})
	time.Sleep(3 * interval) // checks pass meanwhile, and nothing moves
	ro = getRollout(t, ns, "checkout")
	if ro.Status.Phase != meshv1alpha1.RolloutPaused || !atStep(1, 30)(ro) {
		t.Fatalf("pause {} did not hold: %s step %v weight %d", ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.CanaryWeight)
	}
	if c := condition(ro, "Paused"); !strings.HasPrefix(c, "True") {
		t.Errorf("Paused is %s", c)
	}
	counts := split(t, c, 400)
	if s := share(counts, "v2"); s < 22 || s > 38 {
		t.Errorf("at 30 %% the canary got %.1f%% of 400 calls: %v", s, counts)
	}
	if counts := split(t, c, 50, "x-canary", "yes"); counts["v2"] != 50 {
		t.Errorf("calls with the header route's header should all reach the canary: %v", counts)
	}

	request(t, ns, "checkout", "promote")
	waitRollout(t, ns, "checkout", time.Minute, "paused at 60 %", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(3, 60)(ro)
	})

	request(t, ns, "checkout", "abort")
	ro = waitRollout(t, ns, "checkout", time.Minute, "RolledBack", inPhase(meshv1alpha1.RolloutRolledBack))
	if ro.Status.AbortReason != "AbortedByUser" || ro.Status.CanaryWeight != 0 {
		t.Errorf("aborted with reason %q weight %d", ro.Status.AbortReason, ro.Status.CanaryWeight)
	}
	allOn(t, ns, "v1")
	// The header route goes with the canary: its calls are served by stable, none fails.
	if counts := split(t, c, 50, "x-canary", "yes"); counts["v1"] != 50 {
		t.Errorf("after the abort, calls with the header should reach stable: %v", counts)
	}
}

func hasEvent(t *testing.T, ns, name, reason string) bool {
	t.Helper()
	var list eventsv1.EventList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	for _, e := range list.Items {
		if e.Regarding.Kind == "Rollout" && e.Regarding.Name == name && e.Reason == reason {
			return true
		}
	}
	return false
}

// A new revision in the middle of a run restarts the run on the newest revision: the analysis
// starts over, and the canary's share goes to the new pods only.
func TestNewRevisionMidRunRestartsTheRun(t *testing.T) {
	t.Parallel()
	ns := namespace(t, "midrun")
	setUp(t, ns, analysisSpec(interval, 1, 95, ""), setWeight(30), pauseUntilPromoted())
	c := newClient(t, ns, "checkout")
	startLoad(t, c, 10*time.Millisecond)

	release(t, ns, "checkout", "v2", 0)
	v2 := waitRollout(t, ns, "checkout", time.Minute, "paused at 30 % with v2", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(1, 30)(ro)
	}).Status.CanaryRevision

	release(t, ns, "checkout", "v3", 0)
	ro := waitRollout(t, ns, "checkout", time.Minute, "paused at 30 % with v3", func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.Phase == meshv1alpha1.RolloutPaused && atStep(1, 30)(ro) && ro.Status.CanaryRevision != v2
	})
	if ro.Status.Analysis == nil || ro.Status.Analysis.PassedChecks > 1 {
		t.Errorf("the analysis did not start over on v3: %+v", ro.Status.Analysis)
	}
	if !hasEvent(t, ns, "checkout", "RunRestarted") {
		t.Error("no RunRestarted event")
	}
	eventually(t, 30*time.Second, func() error {
		counts := split(t, c, 300)
		if counts["v2"] > 0 || counts["error"] > 0 {
			return fmt.Errorf("v2 still answers (or calls fail) after v3 replaced it: %v", counts)
		}
		if s := share(counts, "v3"); s < 20 || s > 40 {
			return fmt.Errorf("at 30 %% v3 got %.1f%% of 300 calls: %v", s, counts)
		}
		return nil
	})
}
