package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// StartFunc starts a test's server for a pod that runs on the node with an IP (pod.Status.PodIP,
// 192.0.2.N; the server listens on LoopbackFor of it, 127.0.0.N). It returns a function that
// stops the server, which may be nil. stop must return only once the server no longer listens:
// kwok hands a deleted pod's IP to the next new pod, whose server then listens on the same
// address. ctx is cancelled after stop returns, or when the runtime stops.
type StartFunc func(ctx context.Context, pod *corev1.Pod) (stop func(), err error)

// Runtime plays the containers of the pods on a Cluster's node: it calls a StartFunc once for
// each pod that is Running with an IP and calls the returned stop when the pod terminates (it is
// being deleted, or has Succeeded or Failed) or disappears.
//
// One watch of the node's pods feeds every Runtime of a Cluster, one event at a time. kwok gives
// an IP to a new pod only once the pod that had it is deleted, so before a server starts for a
// pod, a server still running for another pod with the same IP (in any Runtime) is stopped: two
// never listen on one address, whatever order the events come in. The StartFunc and stop run
// within that sequence: they must not wait for other pods' events, nor call RunPods or Stop.
type Runtime struct {
	c *Cluster
	// errorf reports a pod that failed to start or to be marked serving.
	errorf    func(format string, args ...any)
	namespace string
	start     StartFunc
	ctx       context.Context
	cancel    context.CancelFunc
	stopOnce  sync.Once

	// Changed only with c.runtimesMu held, which serializes the pod events; mu guards pods for
	// Running.
	mu      sync.Mutex
	pods    map[types.UID]*runningPod
	handled map[types.UID]bool // started once, or failed to start: never started again
}

// runningPod is a pod whose server runs.
type runningPod struct {
	r      *Runtime
	uid    types.UID
	key    string // namespace/name
	ip     string
	stop   func()
	cancel context.CancelFunc
}

// RunPods starts a Runtime for the pods on the node in namespace (every namespace when empty),
// beginning with those already running. It stops when t ends, when Stop is called or when the
// Cluster stops, stopping every server it started. A start that fails, or a pod that cannot be
// marked as serving (ServingGate), fails t.
func (c *Cluster) RunPods(t testing.TB, namespace string, start StartFunc) *Runtime {
	t.Helper()
	r := c.Run(namespace, start, t.Errorf)
	t.Cleanup(r.Stop)
	return r
}

// Run is RunPods outside a test (the sandbox): errorf reports a pod that failed to start or to be
// marked serving, and the Runtime stops on Stop or when the Cluster stops.
func (c *Cluster) Run(namespace string, start StartFunc, errorf func(format string, args ...any)) *Runtime {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		c: c, errorf: errorf, namespace: namespace, start: start, ctx: ctx, cancel: cancel,
		pods: map[types.UID]*runningPod{}, handled: map[types.UID]bool{},
	}
	c.runtimesMu.Lock()
	c.runtimes = append(c.runtimes, r)
	// The store may be one event ahead of the events handled; sync is idempotent, so handling a
	// pod now and its event again later does no harm.
	for _, obj := range c.podStore.List() {
		r.sync(obj, false)
	}
	c.runtimesMu.Unlock()
	return r
}

// startPodWatch watches the pods on the node and hands each event to the runtimes.
func (c *Cluster) startPodWatch() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stopPodWatch = cancel
	c.podWatchDone = make(chan struct{})
	c.serving = map[string]*runningPod{}
	dispatch := func(obj any, deleted bool) {
		c.runtimesMu.Lock()
		defer c.runtimesMu.Unlock()
		for _, r := range c.runtimes {
			r.sync(obj, deleted)
		}
	}
	var informer cache.Controller
	c.podStore, informer = cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: c.podListWatch(metav1.NamespaceAll, fields.OneTermEqualSelector("spec.nodeName", c.opts.NodeName)),
		ObjectType:    &corev1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { dispatch(obj, false) },
			UpdateFunc: func(_, obj any) { dispatch(obj, false) },
			DeleteFunc: func(obj any) { dispatch(obj, true) },
		},
	})
	go func() {
		defer close(c.podWatchDone)
		informer.RunWithContext(ctx)
	}()
}

// Running returns namespace/name of the pods whose servers run, sorted.
func (r *Runtime) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.pods))
	for _, p := range r.pods {
		keys = append(keys, p.key)
	}
	slices.Sort(keys)
	return keys
}

// Stop stops every server still running and handles no more pods. It is safe to call more than
// once.
func (r *Runtime) Stop() {
	r.stopOnce.Do(func() {
		r.c.runtimesMu.Lock()
		defer r.c.runtimesMu.Unlock()
		r.c.runtimes = slices.DeleteFunc(r.c.runtimes, func(x *Runtime) bool { return x == r })
		for _, p := range r.pods {
			p.halt()
		}
		r.cancel()
	})
}

// halt stops the pod's server and forgets it. Called with c.runtimesMu held.
func (p *runningPod) halt() {
	if p.stop != nil {
		p.stop()
	}
	p.cancel()
	p.r.mu.Lock()
	delete(p.r.pods, p.uid)
	p.r.mu.Unlock()
	if p.r.c.serving[p.ip] == p {
		delete(p.r.c.serving, p.ip)
	}
}

// sync brings the pod's server in line with the pod: started while the pod runs with an IP,
// stopped once it terminates or is gone. Called with c.runtimesMu held.
func (r *Runtime) sync(obj any, deleted bool) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || (r.namespace != "" && pod.Namespace != r.namespace) {
		return
	}
	running := r.pods[pod.UID]
	switch {
	case deleted:
		delete(r.handled, pod.UID)
		if running != nil {
			running.halt()
		}
	case running != nil && (pod.DeletionTimestamp != nil ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed):
		running.halt()
	case running == nil && !r.handled[pod.UID] && shouldRun(pod):
		r.handled[pod.UID] = true
		r.run(pod)
	}
}

// run starts the pod's server. Called with c.runtimesMu held.
func (r *Runtime) run(pod *corev1.Pod) {
	ip := pod.Status.PodIP
	if previous := r.c.serving[ip]; previous != nil {
		// The pod that had this IP is gone: its events are still on their way. Unless the watch
		// says it still runs: then kwok gave one IP to two pods.
		if r.c.stillRuns(previous) {
			r.errorf("testcluster: pods %s and %s/%s both have IP %s", previous.key, pod.Namespace, pod.Name, ip)
		}
		previous.halt()
	}
	ctx, cancel := context.WithCancel(r.ctx)
	stop, err := r.start(ctx, pod.DeepCopy())
	if err != nil {
		cancel()
		r.errorf("testcluster: starting pod %s/%s (IP %s): %v", pod.Namespace, pod.Name, ip, err)
		return
	}
	p := &runningPod{r: r, uid: pod.UID, key: pod.Namespace + "/" + pod.Name, ip: ip, stop: stop, cancel: cancel}
	r.mu.Lock()
	r.pods[pod.UID] = p
	r.mu.Unlock()
	r.c.serving[ip] = p
	if hasServingGate(pod) {
		if err := r.markServing(r.ctx, pod); err != nil {
			r.errorf("testcluster: marking pod %s/%s Ready: %v", pod.Namespace, pod.Name, err)
		}
	}
}

// stillRuns says whether the pod watch, which is never behind the event being handled, has p's pod
// running with p's IP.
func (c *Cluster) stillRuns(p *runningPod) bool {
	if c.podStore == nil {
		return false
	}
	obj, ok, _ := c.podStore.GetByKey(p.key)
	pod, _ := obj.(*corev1.Pod)
	return ok && pod != nil && pod.UID == p.uid && shouldRun(pod) && pod.Status.PodIP == p.ip
}

func shouldRun(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""
}

func hasServingGate(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.ReadinessGates, func(g corev1.PodReadinessGate) bool {
		return g.ConditionType == ServingGate
	})
}

// markServing does what the kubelet does when a readiness gate's condition turns True and the
// containers are ready: it sets the gate's condition and Ready to True.
func (r *Runtime) markServing(ctx context.Context, pod *corev1.Pod) error {
	now := metav1.NewTime(time.Now())
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{
			"conditions": []map[string]any{
				{"type": ServingGate, "status": corev1.ConditionTrue, "lastTransitionTime": now},
				{"type": corev1.PodReady, "status": corev1.ConditionTrue, "lastTransitionTime": now, "reason": nil, "message": nil},
			},
		},
	})
	if err != nil {
		return err
	}
	_, err = r.c.clientset.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	// A pod deleted meanwhile, or a runtime stopping, is no failure.
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}
