// Package testcluster makes the test API server (internal/testenv) run workloads: Deployments get
// ReplicaSets, pods with pod-template-hash labels, pods that become Running and Ready with an IP,
// and EndpointSlices, without a kubelet or containers. It runs real parts:
//
//   - kube-controller-manager (built by hack/envtest.sh) with the deployment, replicaset,
//     endpointslice and garbage-collector controllers;
//   - kwok (built by hack/kwok.sh), which plays the kubelet of one fake node: it gives the pods on
//     it their status and a pod IP in 192.0.2.0/24 (TEST-NET-1), and deletes terminating pods;
//   - kube-scheduler (built by hack/envtest.sh), which binds the pods to that node;
//   - in the test process, a pod runtime (RunPods) that starts a test's server for each running
//     pod and stops it when the pod goes.
//
// The API server refuses loopback addresses in EndpointSlices and tests may only send traffic to
// loopback, so a pod with IP 192.0.2.N has its server listen on 127.0.0.N (LoopbackFor), and test
// clients dial through DialLoopback, which maps one to the other.
package testcluster

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/internal/proc"
	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

const (
	// DefaultNodeName begins the name of the fake node when Options.NodeName is empty:
	// testcluster-node-N for the process's Nth Cluster, so that a Cluster never finds the pods an
	// earlier one left on its node.
	DefaultNodeName = "testcluster-node"
	// DefaultPodCIDR is where pod IPs come from when Options.PodCIDR is empty: TEST-NET-1, never
	// routed, which LoopbackFor maps to 127.0.0.0/24.
	DefaultPodCIDR = "192.0.2.0/24"
	// NodeIP is the fake node's InternalIP and the pods' hostIP (TEST-NET-2, never routed).
	NodeIP = "198.51.100.1"

	// ServingGate is a pod readiness gate: a pod that lists it in spec.readinessGates becomes
	// Running with an IP but stays not Ready until RunPods's start function has returned for it,
	// as a real pod stays out of its Service's endpoints until its readiness probe passes. A pod
	// without it is Ready as soon as it runs, before its server may listen.
	ServingGate corev1.PodConditionType = "testcluster.sluice.dev/serving"

	// kwokNodeAnnotation marks the nodes kwok manages (kwok's own convention).
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// controllers are the kube-controller-manager controllers a Cluster runs.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"endpointslice-controller",
	"garbage-collector-controller",
}

//go:embed stages/*.yaml
var stages embed.FS

// Options configure a Cluster. The zero value is ready to use.
type Options struct {
	// NodeName is the fake node's name; DefaultNodeName-N when empty.
	NodeName string
	// PodCIDR is the node's spec.podCIDR, where kwok takes pod IPs from; DefaultPodCIDR when empty.
	// It must lie within 192.0.2.0/24 for LoopbackFor. A smaller range (e.g. 192.0.2.128/25) keeps
	// pod IPs clear of other loopback servers a test starts on 127.0.0.N.
	PodCIDR string
	// StartTimeout bounds Start, and New when its ctx has no deadline; 60s when zero.
	StartTimeout time.Duration
	// KwokBinary is the kwok binary to run; KwokBinary() when empty.
	KwokBinary string
	// NodeIP is the node's InternalIP and the pods' hostIP; NodeIP when empty.
	NodeIP string
	// KubeletPort, when set, has kwok serve the kubelet API (pods' port-forward, logs, exec) on
	// NodeIP:KubeletPort and report that port as the node's kubelet endpoint, for the API
	// server's pods/portforward and the like. The API server dials the node's InternalIP (the
	// node has no Hostname address), so NodeIP must be one it reaches: 127.0.0.1. kwok serves a
	// self-signed certificate, which the API server accepts as it has no
	// --kubelet-certificate-authority.
	KubeletPort int
	// KwokConfigs are more kwok configuration files, such as PortForward objects that map a pod's
	// port to an address.
	KwokConfigs []string
	// Verbosity is the klog level of kube-controller-manager (--v); 0 keeps its log short. kwok
	// logs at its default level (info).
	Verbosity int
}

// Cluster is a running kube-controller-manager, kube-scheduler and kwok against a test API
// server, with one fake node.
type Cluster struct {
	env         *testenv.Env
	opts        Options
	clientset   kubernetes.Interface
	dir         string
	nodeCreated bool

	controllerManager *proc.Process
	kwok              *proc.Process
	scheduler         *proc.Process

	podStore     cache.Store // the pods on the node
	stopPodWatch context.CancelFunc
	podWatchDone chan struct{}

	// runtimesMu guards runtimes and serving, and serializes the handling of pod events.
	runtimesMu sync.Mutex
	runtimes   []*Runtime
	serving    map[string]*runningPod // by pod IP

	stopOnce sync.Once
	stopErr  error
}

var kwokBinary = sync.OnceValues(func() (string, error) { return repo.Tool("KWOK_BINARY", "kwok.sh") })

// KwokBinary returns the kwok binary to run: KWOK_BINARY when set, otherwise what hack/kwok.sh
// builds or finds in its cache.
func KwokBinary() (string, error) { return kwokBinary() }

var (
	// running holds the environments that have a Cluster.
	runningMu sync.Mutex
	running   = map[*testenv.Env]bool{}
	// clusters counts the Clusters started, for node names.
	clusters atomic.Int64
)

// Start runs a Cluster against env's API server for a test (see New) and stops it when the test
// ends, logging the processes' output when the test failed. It skips the test in -short mode and
// fails it when the cluster cannot start.
func Start(t testing.TB, env *testenv.Env, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-controller-manager and kwok; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout(opts))
	defer cancel()
	c, err := New(ctx, env, opts)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("testcluster: %v", err)
		} else if t.Failed() {
			t.Logf("testcluster: the cluster's processes said:\n%s", c.Logs())
		}
	})
	return c
}

// New runs kube-controller-manager, kwok and kube-scheduler against env's API server, creates the
// fake node and returns once kwok has made it Ready; ctx bounds the start only. Call Stop when done. One
// Cluster at a time may run per env: two would run two sets of controllers against one API
// server, and they would fight. A package whose tests share one Cluster starts it in TestMain.
func New(ctx context.Context, env *testenv.Env, opts Options) (*Cluster, error) {
	if env == nil {
		return nil, errors.New("env is nil (start it with testenv.Start)")
	}
	if opts.NodeName == "" {
		opts.NodeName = fmt.Sprintf("%s-%d", DefaultNodeName, clusters.Add(1))
	}
	if opts.PodCIDR == "" {
		opts.PodCIDR = DefaultPodCIDR
	}
	if opts.NodeIP == "" {
		opts.NodeIP = NodeIP
	}
	if err := checkPodCIDR(opts.PodCIDR); err != nil {
		return nil, err
	}
	if opts.KwokBinary == "" {
		bin, err := KwokBinary()
		if err != nil {
			return nil, fmt.Errorf("finding kwok: %w", err)
		}
		opts.KwokBinary = bin
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout(opts))
		defer cancel()
	}

	runningMu.Lock()
	if running[env] {
		runningMu.Unlock()
		return nil, errors.New("a Cluster already runs against this API server: share it, or stop it first")
	}
	running[env] = true
	runningMu.Unlock()

	c := &Cluster{env: env, opts: opts}
	if err := c.start(ctx); err != nil {
		logs := c.Logs()
		_ = c.Stop()
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	return c, nil
}

func startTimeout(opts Options) time.Duration {
	if opts.StartTimeout == 0 {
		return 60 * time.Second
	}
	return opts.StartTimeout
}

func (c *Cluster) start(ctx context.Context) error {
	var err error
	if c.clientset, err = kubernetes.NewForConfig(c.env.Config); err != nil {
		return err
	}
	if c.dir, err = os.MkdirTemp("", "sluice-testcluster-"); err != nil {
		return err
	}
	if err := c.createNode(ctx); err != nil {
		return err
	}
	c.startPodWatch()
	if c.controllerManager, err = c.startControllerManager(); err != nil {
		return err
	}
	// kwok v0.8.0 sets up each Stage lazily on first use, and its node and pod controllers then
	// write shared maps unguarded: it can die of "concurrent map writes" when it finds pods on
	// its node as it starts. The node is new, and pods are bound to it only once it is Ready
	// (the node's Stage set up), so that should not happen; should it still, kwok starts again.
	for attempt := 1; ; attempt++ {
		var previous string
		if c.kwok != nil {
			previous = c.kwok.Logs() + fmt.Sprintf("----- %v; starting it again\n", c.kwok.ExitedEarly())
		}
		if c.kwok, err = c.startKwok(previous); err != nil {
			return err
		}
		err = c.waitNodeReady(ctx)
		if err == nil || attempt == 3 || ctx.Err() != nil || c.kwok.ExitedEarly() == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if err := c.untaintNode(ctx); err != nil {
		return err
	}
	if err := c.warmIPPool(ctx); err != nil {
		return err
	}
	c.scheduler, err = c.startScheduler()
	return err
}

// NodeName is the fake node's name.
func (c *Cluster) NodeName() string { return c.opts.NodeName }

// PodCIDR is the range pod IPs come from.
func (c *Cluster) PodCIDR() string { return c.opts.PodCIDR }

// Clientset is a client-go clientset for the API server.
func (c *Cluster) Clientset() kubernetes.Interface { return c.clientset }

// Err says whether kube-controller-manager, kube-scheduler or kwok has exited; nil while all run.
func (c *Cluster) Err() error {
	var errs []error
	for _, p := range c.processes() {
		if p != nil {
			errs = append(errs, p.ExitedEarly())
		}
	}
	return errors.Join(errs...)
}

// processes are the Cluster's processes, in the order they start.
func (c *Cluster) processes() []*proc.Process {
	return []*proc.Process{c.controllerManager, c.kwok, c.scheduler}
}

// Logs returns the command lines and the last part of the output of kube-controller-manager,
// kwok and kube-scheduler, for failure messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, p := range c.processes() {
		if p == nil {
			continue
		}
		fmt.Fprintf(&b, "----- %s: %s\n%s", p.Name(), p.CommandLine(), p.Logs())
		if err := p.ExitedEarly(); err != nil {
			fmt.Fprintf(&b, "----- %v\n", err)
		}
	}
	return b.String()
}

func (c *Cluster) startControllerManager() (*proc.Process, error) {
	args := []string{
		"--kubeconfig=" + c.env.KubeconfigPath,
		"--controllers=" + strings.Join(controllers, ","),
		// One instance, no lease to wait for.
		"--leader-elect=false",
		// No HTTPS endpoint (health, metrics): nothing listens, no port to pick or collide on.
		"--secure-port=0",
		// The defaults (20 QPS, burst 30) throttle a burst of pod creations in a test.
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
		// Gather a pod's changes for 50ms: kwok's status patch and the pod runtime's Ready patch
		// come milliseconds apart, and handled one by one, the second often finds the
		// controller's EndpointSlice cache behind its own write ("informer cache is out of
		// date"), and it retries after a 1s backoff. With the batch, endpoints follow a pod in
		// 0.1-0.3s instead of up to 1.3s.
		"--endpointslice-updates-batch-period=50ms",
		fmt.Sprintf("--v=%d", c.opts.Verbosity),
	}
	return proc.Start(proc.Options{Name: "kube-controller-manager", Bin: filepath.Join(c.env.AssetsDir, "kube-controller-manager"), Args: args})
}

// startKwok runs kwok; its log begins with preamble.
func (c *Cluster) startKwok(preamble string) (*proc.Process, error) {
	stageDir := filepath.Join(c.dir, "kwok-stages")
	if err := os.MkdirAll(stageDir, 0o700); err != nil {
		return nil, err
	}
	entries, err := stages.ReadDir("stages")
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + c.env.KubeconfigPath,
		// Only the node New creates.
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=" + c.opts.NodeName,
		// The default range when a node has no spec.podCIDR; ours has, so this is a backstop.
		"--cidr=" + c.opts.PodCIDR,
		"--node-ip=" + c.opts.NodeIP,
		// No lease heartbeats: no node lifecycle controller watches them.
		"--node-lease-duration-seconds=0",
	}
	if c.opts.KubeletPort != 0 {
		args = append(args, "--node-port="+strconv.Itoa(c.opts.KubeletPort),
			"--server-address="+net.JoinHostPort(c.opts.NodeIP, strconv.Itoa(c.opts.KubeletPort)))
	}
	for _, config := range c.opts.KwokConfigs {
		args = append(args, "--config="+config)
	}
	for _, e := range entries {
		data, err := stages.ReadFile("stages/" + e.Name())
		if err != nil {
			return nil, err
		}
		path := filepath.Join(stageDir, e.Name())
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--config="+path)
	}
	// kwok reads ~/.kwok/kwok.yaml too when it exists; point its work directory elsewhere.
	env := []string{"KWOK_WORKDIR=" + filepath.Join(c.dir, "kwok-workdir")}
	return proc.Start(proc.Options{Name: "kwok", Bin: c.opts.KwokBinary, Args: args, Env: env, Preamble: preamble})
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.opts.NodeName,
			Annotations: map[string]string{kwokNodeAnnotation: c.opts.NodeName},
			Labels: map[string]string{
				"kubernetes.io/hostname": c.opts.NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: c.opts.PodCIDR, PodCIDRs: []string{c.opts.PodCIDR}},
	}
	_, err := c.clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", c.opts.NodeName, err)
	}
	c.nodeCreated = true
	return nil
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		node, err := c.clientset.CoreV1().Nodes().Get(ctx, c.opts.NodeName, metav1.GetOptions{})
		if err == nil && nodeReady(node) {
			return nil
		}
		if err := c.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready: %w", c.opts.NodeName, ctx.Err())
		case <-tick.C:
		}
	}
}

func nodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop ends the pod runtimes and the processes, deletes the node and removes the
// temporary files. It returns an error when a process had exited before (with its output), or
// when the node cannot be deleted. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	defer func() {
		runningMu.Lock()
		delete(running, c.env)
		runningMu.Unlock()
	}()
	c.runtimesMu.Lock()
	runtimes := slices.Clone(c.runtimes)
	c.runtimesMu.Unlock()
	for _, r := range runtimes {
		r.Stop()
	}
	if c.stopPodWatch != nil {
		c.stopPodWatch()
		<-c.podWatchDone
	}
	var errs []error
	if err := c.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%w\n%s", err, c.Logs()))
	}
	for _, p := range slices.Backward(c.processes()) {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if c.nodeCreated {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.clientset.CoreV1().Nodes().Delete(ctx, c.opts.NodeName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting node %s: %w", c.opts.NodeName, err))
		}
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// podListWatch lists and watches the pods in namespace (all when empty) that match selector.
func (c *Cluster) podListWatch(namespace string, selector fields.Selector) *cache.ListWatch {
	return cache.NewListWatchFromClient(c.clientset.CoreV1().RESTClient(), "pods", namespace, selector)
}
