package server

import (
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func (ts *testServer) cacheVersions() map[string]uint64 {
	ts.pubMu.Lock()
	defer ts.pubMu.Unlock()
	return maps.Clone(ts.versions)
}

// pushCounts reads sluice_xds_pushes_total by type.
func (ts *testServer) pushCounts() map[string]float64 {
	out := map[string]float64{}
	for _, typ := range servedTypes {
		out[typeNames[typ]] = testutil.ToFloat64(ts.metrics.pushes.WithLabelValues(typeNames[typ]))
	}
	return out
}

// routeCluster is the cluster the first route of a route config sends to.
func routeCluster(t *testing.T, r *discovery.DiscoveryResponse, name string) string {
	t.Helper()
	rc, ok := decode(t, r.GetResources())[name].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("response has no route config %s", name)
	}
	return rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster()
}

// Only the resources that changed are pushed and only their caches' versions move; an identical
// snapshot pushes nothing.
func TestPublishPushesOnlyChanges(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.clusters = []string{"c1", "c2"}
	m.routes = map[string]string{"r1": "c1", "r2": "c1"}
	ts.publish(t, m)
	c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
	c.fetch(resource.ClusterType)
	c.fetch(resource.EndpointType, "c1", "c2")
	c.fetch(resource.ListenerType)
	if got := responseNames(t, c.fetch(resource.RouteType, "r1", "r2")); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("initial routes %v", got)
	}
	before := ts.cacheVersions()
	pushes := ts.pushCounts()

	// Identical content in new objects: nothing changes.
	ts.publish(t, m)
	if got := ts.cacheVersions(); !maps.Equal(got, before) {
		t.Errorf("identical snapshot moved versions from %v to %v", before, got)
	}

	// One route changes: one RDS response with only that route, and only the RDS version moves.
	m2 := m.clone()
	m2.routes["r1"] = "c2"
	ts.publish(t, m2)
	r := c.next(resource.RouteType)
	if got := responseNames(t, r); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("pushed routes %v, want [r1]", got)
	}
	if got := routeCluster(t, r, "r1"); got != "c2" {
		t.Errorf("r1 sends to %s, want c2", got)
	}
	want := maps.Clone(before)
	want[resource.RouteType]++
	if got := ts.cacheVersions(); !maps.Equal(got, want) {
		t.Errorf("versions after one route change: %v, want %v", got, want)
	}
	c.ack(r, "r1", "r2")

	// Had the identical publish pushed anything, it would come before this (ADS keeps the order).
	m3 := m2.clone()
	m3.routes["r2"] = "c2"
	ts.publish(t, m3)
	if got := responseNames(t, c.next(resource.RouteType)); !slices.Equal(got, []string{"r2"}) {
		t.Fatalf("pushed routes %v, want [r2]", got)
	}
	pushes["rds"] += 2
	if got := ts.pushCounts(); !maps.Equal(got, pushes) {
		t.Errorf("responses sent: %v, want %v", got, pushes)
	}
}

// An invalid snapshot changes nothing: Publish returns the error and proxies, old and new, get the
// previous configuration.
func TestInvalidSnapshotKeepsPreviousConfig(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	conn := ts.dial(t)
	c := newSotwClient(t, conn, testNode("envoy-1", ""))
	c.fetch(resource.EndpointType, "c1")
	before := ts.cacheVersions()

	bad := baseMesh()
	bad.endpointPort = 70000 // not a port
	bad.routes["r2"] = "c1"
	if err := ts.Publish(bad.snapshot(t), time.Now()); err == nil {
		t.Fatal("Publish accepted an invalid snapshot")
	}
	misnamed := baseMesh().snapshot(t)
	misnamed.Clusters["c9"] = testCluster("c8")
	if err := ts.Publish(misnamed, time.Now()); err == nil {
		t.Fatal("Publish accepted a cluster stored under another name")
	}
	if err := ts.Publish(nil, time.Now()); err == nil {
		t.Fatal("Publish accepted a nil snapshot")
	}
	if got := ts.cacheVersions(); !maps.Equal(got, before) {
		t.Errorf("rejected snapshots moved versions from %v to %v", before, got)
	}
	if got := testutil.ToFloat64(ts.metrics.rejections); got != 3 {
		t.Errorf("sluice_xds_snapshot_rejections_total = %v, want 3", got)
	}

	// A proxy that connects now gets the last good configuration.
	late := newSotwClient(t, conn, testNode("envoy-2", ""))
	r := late.fetch(resource.EndpointType, "c1")
	cla := decode(t, r.GetResources())["c1"].(*endpointv3.ClusterLoadAssignment)
	if port := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); port != 8080 {
		t.Errorf("endpoint port %d, want the previous 8080", port)
	}
}

// A new cluster reaches the proxy, and is ACKed, before the route that uses it is sent.
func TestPublishMakeBeforeBreak(t *testing.T) {
	ts := startServer(t, Options{WarmTimeout: time.Minute})
	ts.publish(t, baseMesh())
	c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
	c.fetch(resource.ClusterType)
	c.fetch(resource.EndpointType, "c1")
	c.fetch(resource.ListenerType)
	c.fetch(resource.RouteType, "r1")

	m := baseMesh()
	m.clusters = append(m.clusters, "c2")
	m.routes["r1"] = "c2"
	published := make(chan error, 1)
	start := time.Now()
	go func() { published <- ts.Publish(m.snapshot(t), time.Now()) }()

	cds := c.next(resource.ClusterType)
	if got := responseNames(t, cds); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("clusters %v, want [c1 c2]", got)
	}
	// Until the clusters are ACKed the route is not in its cache, so it cannot have been sent.
	if got, _ := ts.caches[resource.RouteType].Get("r1"); got.(*routev3.RouteConfiguration).GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster() != "c1" {
		t.Fatal("the route to c2 was published before the proxy ACKed c2")
	}
	select {
	case err := <-published:
		t.Fatalf("Publish returned (%v) before the proxy ACKed the new cluster", err)
	default:
	}
	c.noResponse()

	c.ack(cds)
	r := c.next(resource.RouteType)
	if got := routeCluster(t, r, "r1"); got != "c2" {
		t.Errorf("r1 sends to %s, want c2", got)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > wait {
		t.Errorf("Publish took %s after the ACK", d)
	}
	if got := testutil.ToFloat64(ts.metrics.warmTimeouts); got != 0 {
		t.Errorf("sluice_xds_warm_timeouts_total = %v", got)
	}
}

func TestPublishWarmWait(t *testing.T) {
	newClusterAndRoute := func() mesh {
		m := baseMesh()
		m.clusters = append(m.clusters, "c2")
		m.routes["r1"] = "c2"
		return m
	}

	// A proxy that never ACKs holds Publish for WarmTimeout, no longer.
	t.Run("timeout", func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		ts := startServer(t, Options{WarmTimeout: timeout})
		ts.publish(t, baseMesh())
		c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
		c.fetch(resource.ClusterType)
		c.fetch(resource.RouteType, "r1")
		start := time.Now()
		ts.publish(t, newClusterAndRoute())
		if d := time.Since(start); d < timeout {
			t.Errorf("Publish returned after %s, before the warm timeout", d)
		}
		c.next(resource.ClusterType) // not ACKed
		if got := routeCluster(t, c.next(resource.RouteType), "r1"); got != "c2" {
			t.Errorf("r1 sends to %s, want c2", got)
		}
		if got := testutil.ToFloat64(ts.metrics.warmTimeouts); got != 1 {
			t.Errorf("sluice_xds_warm_timeouts_total = %v, want 1", got)
		}
	})

	// Proxies that do not watch the new clusters (gRPC asks for clusters by name), NACK them, or
	// are gone are not waited for.
	t.Run("not waited for", func(t *testing.T) {
		ts := startServer(t, Options{WarmTimeout: time.Minute})
		ts.publish(t, baseMesh())
		conn := ts.dial(t)
		byName := newSotwClient(t, conn, testNode("grpc-1", "grpc"))
		byName.fetch(resource.ClusterType, "c1")
		nacker := newSotwClient(t, conn, testNode("envoy-1", ""))
		nacker.fetch(resource.ClusterType)
		gone := newSotwClient(t, conn, testNode("envoy-2", ""))
		gone.fetch(resource.ClusterType)

		published := make(chan error, 1)
		go func() { published <- ts.Publish(newClusterAndRoute().snapshot(t), time.Now()) }()
		r := nacker.next(resource.ClusterType)
		gone.next(resource.ClusterType)
		gone.cancel()
		nacker.nack(r, "1", "no")
		select {
		case err := <-published:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(wait):
			t.Fatal("Publish waited for proxies that will not ACK the new cluster")
		}
	})

	// With no proxy connected, and for a change that adds no cluster, there is nothing to wait for.
	t.Run("nothing to wait for", func(t *testing.T) {
		ts := startServer(t, Options{WarmTimeout: time.Minute})
		ts.publish(t, baseMesh())
		c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
		c.fetch(resource.ClusterType)
		m := baseMesh()
		m.routes["r2"] = "c1"
		start := time.Now()
		ts.publish(t, m)
		if d := time.Since(start); d > wait {
			t.Errorf("Publish without new clusters took %s", d)
		}
	})
}

// A delta stream gets additions and removals, each once.
func TestDeltaAddAndRemove(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	d := newDeltaClient(t, ts.dial(t), testNode("envoy-1", ""))
	d.subscribe(resource.ClusterType) // wildcard
	r := d.next(resource.ClusterType)
	if got := deltaNames(r); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("initial clusters %v", got)
	}
	d.ack(r)

	m := baseMesh()
	m.clusters = []string{"c1", "c2"}
	ts.publish(t, m)
	r = d.next(resource.ClusterType)
	if got := deltaNames(r); !slices.Equal(got, []string{"c2"}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("after adding c2: resources %v, removed %v", got, r.GetRemovedResources())
	}
	var c clusterv3.Cluster
	if err := r.GetResources()[0].GetResource().UnmarshalTo(&c); err != nil || c.GetName() != "c2" {
		t.Fatalf("resource c2 is %v (%v)", &c, err)
	}
	d.ack(r)

	m.clusters = []string{"c2"}
	m.routes["r1"] = "c2"
	ts.publish(t, m)
	r = d.next(resource.ClusterType)
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"c1"}) {
		t.Fatalf("after removing c1: resources %v, removed %v", deltaNames(r), r.GetRemovedResources())
	}
	d.ack(r)
}
