package server

import (
	"slices"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// A proxy that asks for clusters by name (proxyless gRPC) gets a route that starts sending to a new
// cluster only after it holds that cluster: first the route as it was plus a warm-up route to the
// new cluster, then, once it has fetched and ACKed the cluster and its endpoints, the real route.
func TestRouteWarmupForNamedClusterWatchers(t *testing.T) {
	ts := startServer(t, Options{WarmTimeout: time.Minute})
	ts.publish(t, baseMesh())
	c := newSotwClient(t, ts.dial(t), testNode("grpc-1", envoy.FlavourGRPC))
	c.fetch(resource.RouteType, "r1")
	c.fetch(resource.ClusterType, "c1")
	c.fetch(resource.EndpointType, "c1")

	m := baseMesh()
	m.clusters = append(m.clusters, "c2")
	m.routes["r1"] = "c2"
	published := make(chan error, 1)
	go func() { published <- ts.Publish(m.snapshot(t), time.Now()) }()

	warm := c.next(resource.RouteType)
	rc := decode(t, warm.GetResources())["r1"].(*routev3.RouteConfiguration)
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	if len(routes) != 2 || routes[0].GetMatch().GetPath() != WarmupPathPrefix+"c2" || routes[0].GetRoute().GetCluster() != "c2" ||
		routes[1].GetRoute().GetCluster() != "c1" {
		t.Fatalf("want the old route plus a warm-up route to c2, got %v", routes)
	}
	c.ack(warm, "r1")
	select {
	case err := <-published:
		t.Fatalf("Publish returned (%v) before the proxy held c2", err)
	case <-time.After(100 * time.Millisecond):
	}

	// As grpc-go does: subscribe to the clusters the routes name, and to their endpoints.
	if got := responseNames(t, c.fetch(resource.ClusterType, "c1", "c2")); !slices.Contains(got, "c2") {
		t.Fatalf("clusters %v lack c2", got)
	}
	c.fetch(resource.EndpointType, "c1", "c2")
	final := c.next(resource.RouteType)
	if got := routeCluster(t, final, "r1"); got != "c2" {
		t.Errorf("r1 sends to %s, want c2", got)
	}
	c.ack(final, "r1")
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}
