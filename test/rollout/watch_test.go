package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// snapshot is what a Rollout's status said at one moment.
type snapshot struct {
	at     time.Time
	phase  meshv1alpha1.RolloutPhase
	weight int32
	step   int32
	msg    string
}

func (s snapshot) String() string {
	return fmt.Sprintf("%s %s weight=%d step=%d %q", s.at.Format("15:04:05.000"), s.phase, s.weight, s.step, s.msg)
}

// history polls a Rollout's status from the API server and keeps every change, so a test can
// say what happened in between (a weight that should never have been seen) and when.
type history struct {
	// v1 is the revision stable before the test released another.
	v1 string

	mu    sync.Mutex
	snaps []snapshot
}

func watchRollout(t *testing.T, ns, name string) *history {
	t.Helper()
	h := &history{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ro := &meshv1alpha1.Rollout{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ro); err == nil {
				h.add(snapshotOf(ro))
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("status history of %s/%s:\n%s", ns, name, h)
			ro := &meshv1alpha1.Rollout{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro); err == nil && ro.Status.Analysis != nil {
				for _, m := range ro.Status.Analysis.Metrics {
					for _, r := range m.Results {
						t.Logf("evidence %s (%s): %s %s %s value %q requests %d %s", m.Name, m.Threshold,
							r.Time.Format("15:04:05"), r.Verdict, r.Reason, r.Value, ptr.Deref(r.Requests, -1), r.Error)
					}
				}
			}
		}
	})
	return h
}

func snapshotOf(ro *meshv1alpha1.Rollout) snapshot {
	s := snapshot{at: time.Now(), phase: ro.Status.Phase, weight: ro.Status.CanaryWeight, msg: ro.Status.Message}
	if ro.Status.CurrentStepIndex != nil {
		s.step = *ro.Status.CurrentStepIndex
	}
	return s
}

func (h *history) add(s snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.snaps); n > 0 {
		last := h.snaps[n-1]
		if last.phase == s.phase && last.weight == s.weight && last.step == s.step && last.msg == s.msg {
			return
		}
	}
	h.snaps = append(h.snaps, s)
}

func (h *history) all() []snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]snapshot(nil), h.snaps...)
}

func (h *history) String() string {
	var b strings.Builder
	for _, s := range h.all() {
		b.WriteString("  " + s.String() + "\n")
	}
	return b.String()
}

// first returns the first snapshot, from since on, that satisfies cond.
func (h *history) first(since time.Time, cond func(snapshot) bool) (snapshot, bool) {
	for _, s := range h.all() {
		if !s.at.Before(since) && cond(s) {
			return s, true
		}
	}
	return snapshot{}, false
}

// waitRollout polls the Rollout until cond holds, failing the test after timeout.
func waitRollout(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*meshv1alpha1.Rollout) bool) *meshv1alpha1.Rollout {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ro := getRollout(t, ns, name)
		if cond(ro) {
			return ro
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the Rollout is not %s: phase %s weight %d message %q conditions %+v",
				timeout, what, ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.Message, ro.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func inPhase(p meshv1alpha1.RolloutPhase) func(*meshv1alpha1.Rollout) bool {
	return func(ro *meshv1alpha1.Rollout) bool { return ro.Status.Phase == p }
}

func atStep(step, weight int32) func(*meshv1alpha1.Rollout) bool {
	return func(ro *meshv1alpha1.Rollout) bool {
		return ro.Status.CurrentStepIndex != nil && *ro.Status.CurrentStepIndex == step && ro.Status.CanaryWeight == weight
	}
}

func condition(ro *meshv1alpha1.Rollout, typ string) string {
	c := meta.FindStatusCondition(ro.Status.Conditions, typ)
	if c == nil {
		return "absent"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}
