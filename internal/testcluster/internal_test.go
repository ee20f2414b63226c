package testcluster

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// fakeRuntime is a Runtime fed by hand, without a cluster, recording what it starts and stops.
func fakeRuntime(t *testing.T, c *Cluster, namespace string, log *[]string) *Runtime {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &Runtime{
		c: c, errorf: t.Errorf, namespace: namespace, ctx: ctx, cancel: cancel,
		pods: map[types.UID]*runningPod{}, handled: map[types.UID]bool{},
		start: func(_ context.Context, pod *corev1.Pod) (func(), error) {
			*log = append(*log, fmt.Sprintf("start %s %s", pod.Name, pod.Status.PodIP))
			return func() { *log = append(*log, "stop "+pod.Name) }, nil
		},
	}
	c.runtimes = append(c.runtimes, r)
	return r
}

func pod(ns, name, ip string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
	}
}

func TestRuntimeSync(t *testing.T) {
	c := &Cluster{serving: map[string]*runningPod{}}
	var log []string
	r := fakeRuntime(t, c, "ns", &log)

	a := pod("ns", "a", "", corev1.PodPending)
	r.sync(a, false) // no IP yet
	a = pod("ns", "a", "192.0.2.1", corev1.PodRunning)
	r.sync(a, false)
	r.sync(a, false)                                                 // once only
	r.sync(pod("other", "x", "192.0.2.9", corev1.PodRunning), false) // another namespace
	terminating := a.DeepCopy()
	terminating.DeletionTimestamp = &metav1.Time{}
	r.sync(terminating, false)
	r.sync(a, false) // an older state again: a pod does not come back
	r.sync(cache.DeletedFinalStateUnknown{Key: "ns/a", Obj: terminating}, true)

	done := pod("ns", "done", "192.0.2.2", corev1.PodRunning)
	r.sync(done, false)
	done.Status.Phase = corev1.PodSucceeded
	r.sync(done, false)

	want := []string{"start a 192.0.2.1", "stop a", "start done 192.0.2.2", "stop done"}
	if !slices.Equal(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
	if got := r.Running(); len(got) != 0 {
		t.Errorf("Running() = %v, want none", got)
	}
}

// TestRuntimeIPTakenOver: a pod gets the IP of a pod whose deletion has not been seen yet (its
// events come later, as can happen when the watch's consumer lags): the old server stops first.
func TestRuntimeIPTakenOver(t *testing.T) {
	c := &Cluster{serving: map[string]*runningPod{}}
	var log []string
	rA, rB := fakeRuntime(t, c, "a", &log), fakeRuntime(t, c, "b", &log)

	old := pod("a", "old", "192.0.2.7", corev1.PodRunning)
	rA.sync(old, false)
	rB.sync(pod("b", "new", "192.0.2.7", corev1.PodRunning), false)
	rA.sync(old, true) // late

	want := []string{"start old 192.0.2.7", "stop old", "start new 192.0.2.7"}
	if !slices.Equal(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
	if got := rA.Running(); len(got) != 0 {
		t.Errorf("a's Running() = %v, want none", got)
	}
	if got := rB.Running(); !slices.Equal(got, []string{"b/new"}) {
		t.Errorf("b's Running() = %v, want [b/new]", got)
	}
	rB.Stop()
	if want := append(want, "stop new"); !slices.Equal(log, want) {
		t.Errorf("after Stop: got %q, want %q", log, want)
	}
}

// TestRuntimeIPGivenTwice: a pod gets the IP of a pod that the watch says still runs: the runtime
// reports it (and still starts the new pod's server, stopping the old one).
func TestRuntimeIPGivenTwice(t *testing.T) {
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	c := &Cluster{serving: map[string]*runningPod{}, podStore: store}
	var log []string
	r := fakeRuntime(t, c, "", &log)
	var reported []string
	r.errorf = func(format string, args ...any) { reported = append(reported, fmt.Sprintf(format, args...)) }

	first := pod("a", "first", "192.0.2.7", corev1.PodRunning)
	second := pod("b", "second", "192.0.2.7", corev1.PodRunning)
	for _, p := range []*corev1.Pod{first, second} {
		if err := store.Add(p); err != nil {
			t.Fatal(err)
		}
		r.sync(p, false)
	}
	want := []string{"testcluster: pods a/first and b/second both have IP 192.0.2.7"}
	if !slices.Equal(reported, want) {
		t.Errorf("reported %q, want %q", reported, want)
	}
	if want := []string{"start first 192.0.2.7", "stop first", "start second 192.0.2.7"}; !slices.Equal(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}

	// A pod terminating in the watch may hand its IP on: nothing more to report.
	terminating := second.DeepCopy()
	terminating.DeletionTimestamp = &metav1.Time{}
	if err := store.Update(terminating); err != nil {
		t.Fatal(err)
	}
	third := pod("c", "third", "192.0.2.7", corev1.PodRunning)
	r.sync(third, false)
	if len(reported) != 1 {
		t.Errorf("reported %q after a terminating pod's IP was reused, want only the first report", reported)
	}
}

func TestCheckPodCIDR(t *testing.T) {
	for _, ok := range []string{"192.0.2.0/24", "192.0.2.128/25", "192.0.2.64/26"} {
		if err := checkPodCIDR(ok); err != nil {
			t.Errorf("checkPodCIDR(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "192.0.2.0", "192.0.2.1/24", "192.0.0.0/16", "10.0.0.0/24", "127.0.0.0/24", "2001:db8::/64"} {
		if err := checkPodCIDR(bad); err == nil {
			t.Errorf("checkPodCIDR(%q) accepted it", bad)
		}
	}
}
