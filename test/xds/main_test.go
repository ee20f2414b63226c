// Package xds_test runs the operator's xDS pipeline against the real test API server and drives
// real gRPC traffic through it: gRPC's own xDS client (an independent xDS implementation) dials
// xds:/// names, and real gRPC backends on loopback addresses answer.
//
// The test binary runs in a network namespace of its own where pod IPs are local (internal/podnet),
// so xDS-enabled gRPC servers can listen on their pod IPs. Where that is not possible, the tests
// that need it skip and the others run as before.
package xds_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/podnet"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

var (
	env *testenv.Env
	// xdsAddr is where the operator serves xDS.
	xdsAddr string
	// podnetErr is why pod IPs are not local addresses here (nil when they are): the tests whose
	// servers listen on pod IPs skip with it.
	podnetErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the xDS system tests in -short mode")
		return
	}
	// The namespace has no way out, so the Kubernetes binaries are found (or built) before.
	podnetErr = podnet.EnterAfter(func() error {
		assets, err := testenv.Assets()
		if err != nil {
			return err
		}
		return os.Setenv("KUBEBUILDER_ASSETS", assets)
	})
	if podnetErr != nil {
		if !errors.Is(podnetErr, podnet.ErrUnavailable) {
			fmt.Fprintln(os.Stderr, podnetErr)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "pod IPs are not local, the tests of xDS gRPC servers will skip:", podnetErr)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	testmesh.SetLogger()
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	xdsAddr = freeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	stopped, _, err := startOperator(ctx, xdsAddr, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		cancel()
		return 1
	}
	defer func() { cancel(); <-stopped }()
	return m.Run()
}

// startOperator runs the manager (xDS server and mesh controllers) until ctx ends; the returned
// channel closes when it has stopped, and the registry holds its xDS metrics.
// With leaderElect the replicas compete for the lease in namespace default, as in a cluster.
func startOperator(ctx context.Context, addr string, leaderElect bool) (<-chan struct{}, *prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	mgr, err := manager.New(env.Config, manager.Options{
		MetricsAddr:                  "0",
		ProbeAddr:                    "0",
		XDSPlaintextAddr:             addr,
		LeaderElect:                  leaderElect,
		LeaderElectionNamespace:      "default",
		Debounce:                     20 * time.Millisecond,
		GracefulShutdown:             5 * time.Second,
		Registerer:                   reg,
		SkipControllerNameValidation: true,
		SkipRolloutController:        true,
	})
	if err != nil {
		return nil, nil, err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "operator stopped:", err)
		}
	}()
	// A client dialled before the port listens meets grpc-go's queued-call window
	// (docs/xds-server.md, TestCallQueuedOnAnUnreachableServerFails): the tests dial after.
	if err := waitListening(addr, stopped); err != nil {
		return nil, nil, err
	}
	return stopped, reg, nil
}

// waitListening waits until addr accepts TCP connections, for at most 30 s or until the operator
// stops.
func waitListening(addr string, stopped <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-stopped:
			return fmt.Errorf("the operator stopped before serving xDS on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("xDS is not served on %s after 30 s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectedProxies reads sluice_xds_connected_proxies (all flavours) from an operator's registry.
func connectedProxies(reg *prometheus.Registry) float64 {
	families, _ := reg.Gather()
	total := 0.0
	for _, f := range families {
		if f.GetName() == "sluice_xds_connected_proxies" {
			for _, m := range f.GetMetric() {
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// namespace creates a fresh namespace for one test: name the first time, name-<n> when a test
// runs again (-count), so a test that builds its hostnames from the result can be repeated.
func namespace(t *testing.T, name string) string {
	t.Helper()
	namespaceMu.Lock()
	namespaceRuns[name]++
	if n := namespaceRuns[name]; n > 1 {
		name = fmt.Sprintf("%s-%d", name, n)
	}
	namespaceMu.Unlock()
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

var (
	namespaceMu   sync.Mutex
	namespaceRuns = map[string]int{}
)
