package server

import (
	"context"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

func TestMetrics(t *testing.T) {
	ts := startServer(t, Options{})
	gauge := func(g *prometheus.GaugeVec, label string) float64 {
		return testutil.ToFloat64(g.WithLabelValues(label))
	}

	ts.publish(t, baseMesh())
	for typ, want := range map[string]float64{"lds": 2, "rds": 1, "cds": 1, "eds": 1, "sds": 0} {
		if got := gauge(ts.metrics.snapshotResources, typ); got != want {
			t.Errorf("sluice_xds_snapshot_resources{type=%s} = %v, want %v", typ, got, want)
		}
	}
	bytes := testutil.ToFloat64(ts.metrics.snapshotBytes)
	if bytes <= 0 {
		t.Errorf("sluice_xds_snapshot_bytes = %v", bytes)
	}

	ts.ObserveTranslation(20 * time.Millisecond)
	if got := histogramCount(t, ts.reg, "sluice_xds_translation_seconds", nil); got != 1 {
		t.Errorf("sluice_xds_translation_seconds count = %d, want 1", got)
	}

	conn := ts.dial(t)
	e := newSotwClient(t, conn, testNode("envoy-1", ""))
	e.fetch(resource.ClusterType)
	g := newDeltaClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	g.subscribe(resource.ClusterType, "c1")
	g.ack(g.next(resource.ClusterType))
	if a, b := gauge(ts.metrics.connectedProxies, "envoy"), gauge(ts.metrics.connectedProxies, "grpc"); a != 1 || b != 1 {
		t.Errorf("sluice_xds_connected_proxies envoy=%v grpc=%v, want 1 and 1", a, b)
	}
	// The initial fetch is not a convergence.
	if got := histogramCount(t, ts.reg, "sluice_xds_convergence_seconds", map[string]string{"type": "cds"}); got != 0 {
		t.Errorf("convergence observed %d times for initial fetches", got)
	}

	// A new cluster, triggered a second ago, reaches the Envoy; its ACK is the convergence.
	m := baseMesh()
	m.clusters = append(m.clusters, "c2")
	trigger := time.Now().Add(-time.Second)
	if err := ts.Publish(m.snapshot(t), trigger); err != nil {
		t.Fatal(err)
	}
	e.ack(e.next(resource.ClusterType))
	eventually(t, "the convergence to be observed", func() bool {
		return histogramCount(t, ts.reg, "sluice_xds_convergence_seconds", map[string]string{"type": "cds"}) == 1
	})
	if got := testutil.ToFloat64(ts.metrics.snapshotBytes); got <= bytes {
		t.Errorf("sluice_xds_snapshot_bytes went from %v to %v with one more cluster", bytes, got)
	}
	if got := gauge(ts.metrics.snapshotResources, "cds"); got != 2 {
		t.Errorf("sluice_xds_snapshot_resources{type=cds} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(ts.metrics.pushes.WithLabelValues("cds")); got != 3 {
		t.Errorf("sluice_xds_pushes_total{type=cds} = %v, want 3", got)
	}

	e.cancel()
	eventually(t, "the Envoy to disconnect", func() bool { return gauge(ts.metrics.connectedProxies, "envoy") == 0 })
	if got := gauge(ts.metrics.connectedProxies, "grpc"); got != 1 {
		t.Errorf("sluice_xds_connected_proxies{flavour=grpc} = %v, want 1", got)
	}

	// Every metric the docs list is registered.
	names := map[string]bool{}
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"sluice_xds_connected_proxies", "sluice_xds_pushes_total", "sluice_xds_snapshot_resources",
		"sluice_xds_snapshot_bytes", "sluice_xds_translation_seconds", "sluice_xds_convergence_seconds"} {
		if !names[n] {
			t.Errorf("metric %s is not registered", n)
		}
	}
}

// New fails, rather than panics, when the metrics are already registered.
func TestNewReportsDuplicateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Registerer: reg}); err == nil {
		t.Error("a second server on the same registry did not fail")
	}
}

// Serve stops when its context ends, although ADS streams never end on their own, and the
// proxies see their streams close.
func TestServeStopsWithOpenStreams(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
	c.fetch(resource.ClusterType)

	// A second Serve on another listener, stopped on its own.
	ctx, cancel := context.WithCancel(context.Background())
	lis := listen(t)
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, lis) }()
	d := newDeltaClient(t, dialAddr(t, lis.Addr().String()), testNode("grpc-1", envoy.FlavourGRPC))
	d.subscribe(resource.ClusterType, "c1")
	d.ack(d.next(resource.ClusterType))
	eventually(t, "both proxies", func() bool { return len(ts.Proxies()) == 2 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return after its context ended")
	}
	select {
	case err := <-d.ended:
		t.Logf("the stream ended with %v", err)
	case <-time.After(wait):
		t.Fatal("the stream stayed open")
	}
	eventually(t, "the stopped listener's proxy to go", func() bool { return len(ts.Proxies()) == 1 })
	if p := ts.Proxies()[0]; p.NodeID != "envoy-1" {
		t.Errorf("left proxy %s, want envoy-1", p.NodeID)
	}
}
