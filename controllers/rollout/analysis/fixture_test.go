package analysis_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/sluice-mesh/sluice/internal/demoapp"
	"github.com/sluice-mesh/sluice/internal/testprom"
)

// pod is a demo app standing for one meshed pod, with the target labels a Kubernetes scrape
// configuration gives it.
type pod struct {
	*demoapp.Server
	namespace, name, revision string
}

func startPod(t *testing.T, namespace, revision string, opts demoapp.Options) *pod {
	t.Helper()
	opts.Hostname = "checkout-" + revision + "-x7k2p"
	opts.Version = revision
	s, err := demoapp.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return &pod{Server: s, namespace: namespace, name: opts.Hostname, revision: revision}
}

func (p *pod) target() testprom.TargetGroup {
	return targetGroup(p.MetricsAddr(), p.namespace, p.name, p.revision)
}

func targetGroup(addr, namespace, name, revision string) testprom.TargetGroup {
	return testprom.TargetGroup{
		Targets: []string{addr},
		Labels:  map[string]string{"namespace": namespace, "pod": name, "pod_template_hash": revision},
	}
}

func dial(t *testing.T, p *pod) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(p.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// burst sends n UnaryCalls to the pod, one after the other.
func burst(t *testing.T, p *pod, n int) {
	t.Helper()
	client := dial(t, p)
	for range n {
		if _, err := client.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
}

// drive sends UnaryCalls to the pod from a real gRPC client, perSecond of them, until the test
// ends. It returns the number of calls completed so far.
func drive(t *testing.T, p *pod, perSecond int) *atomic.Int64 {
	t.Helper()
	return driveWith(t, p, perSecond, &testpb.SimpleRequest{})
}

// driveWith is drive with the request to send.
func driveWith(t *testing.T, p *pod, perSecond int, req *testpb.SimpleRequest) *atomic.Int64 {
	t.Helper()
	client := dial(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Calls overlap when the pod is slow, as a real client's do.
			wg.Go(func() {
				callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
				defer callCancel()
				_, _ = client.UnaryCall(callCtx, req)
				done.Add(1)
			})
		}
	})
	// Stop the traffic before the pod (cleanups run last registered first).
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &done
}

// Envoy's per-second rates in fakeEnvoy: 90 2xx and 10 5xx responses on the inbound cluster, and
// 50 5xx on an outbound one that the templates must not read.
const (
	envoyInbound2xx  = 90.0
	envoyInbound5xx  = 10.0
	envoyOutbound5xx = 50.0
)

// envoyBuckets are Envoy's default histogram buckets, in milliseconds.
var envoyBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// serveFakeEnvoy serves, on 127.0.0.1, series shaped like an Envoy sidecar's /stats/prometheus
// with Sluice's stats tags (xds/envoy/telemetry.go): cluster_name, envoy_response_code_class,
// source_*. It stands for Envoy, which these tests cannot run. Before each scrape it brings the
// counters up to date with the time since it started, so they grow at exactly the rates above;
// every inbound request takes 40ms. It returns host:port.
func serveFakeEnvoy(t *testing.T) string {
	t.Helper()
	fixed := prometheus.Labels{"source_workload": "checkout", "source_version": "v2", "source_namespace": "shop"}
	rq := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "envoy_cluster_upstream_rq_xx", ConstLabels: fixed,
	}, []string{"cluster_name", "envoy_response_code_class"})
	rqTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "envoy_cluster_upstream_rq_time", Buckets: envoyBuckets, ConstLabels: fixed,
	}, []string{"cluster_name"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(rq, rqTime)

	const inbound, outbound = "InboundPassthroughCluster", "outbound|8080||payments.shop.svc.cluster.local"
	start := time.Now()
	var mu sync.Mutex
	counted := map[string]float64{}
	observed := 0
	advance := func() {
		mu.Lock()
		defer mu.Unlock()
		elapsed := time.Since(start).Seconds()
		for _, c := range []struct {
			cluster, class string
			rate           float64
		}{{inbound, "2", envoyInbound2xx}, {inbound, "5", envoyInbound5xx}, {outbound, "5", envoyOutbound5xx}} {
			key := c.cluster + c.class
			total := c.rate * elapsed
			rq.WithLabelValues(c.cluster, c.class).Add(total - counted[key])
			counted[key] = total
		}
		for due := int((envoyInbound2xx + envoyInbound5xx) * elapsed); observed < due; observed++ {
			rqTime.WithLabelValues(inbound).Observe(40)
		}
	}
	advance()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		advance()
		metrics.ServeHTTP(w, r)
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
