package server

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// A route change counts as programmed once every proxy that watches the route has ACKed it; a
// proxy that rejects it, or has not answered yet, holds it back, and proxies that watch other
// routes do not matter.
func TestRoutesProgrammed(t *testing.T) {
	ts := startServer(t, Options{WarmTimeout: -1})
	if ts.RoutesProgrammed([]string{"r1"}) {
		t.Fatal("r1 is not published yet, but counts as programmed")
	}
	m := baseMesh()
	m.clusters = append(m.clusters, "c2")
	m.routes["r2"] = "c2"
	ts.publish(t, m)
	if !ts.RoutesProgrammed([]string{"r1", "r2"}) {
		t.Fatal("published routes that no proxy watches should count as programmed")
	}

	watcher := newSotwClient(t, ts.dial(t), testNode("r1-watcher", envoy.FlavourGRPC))
	watcher.fetch(resource.RouteType, "r1")
	other := newSotwClient(t, ts.dial(t), testNode("r2-watcher", envoy.FlavourGRPC))
	other.fetch(resource.RouteType, "r2")
	eventually(t, "r1 programmed after the ACK", func() bool { return ts.RoutesProgrammed([]string{"r1"}) })

	// Change r1: not programmed until the watcher ACKs; r2's watcher is not asked.
	m = m.clone()
	m.routes["r1"] = "c2"
	ts.publish(t, m)
	resp := watcher.next(resource.RouteType)
	if ts.RoutesProgrammed([]string{"r1"}) {
		t.Fatal("r1 counts as programmed before its watcher ACKed the change")
	}
	watcher.nack(resp, "1", "bad route", "r1")
	time.Sleep(50 * time.Millisecond)
	if ts.RoutesProgrammed([]string{"r1"}) {
		t.Fatal("r1 counts as programmed although its watcher rejected it")
	}
	if !ts.RoutesProgrammed([]string{"r2"}) {
		t.Fatal("r2 did not change; it should stay programmed")
	}

	// Put r1 back to what the watcher holds, then change it again and ACK: programmed.
	m = m.clone()
	m.routes["r1"] = "c1"
	ts.publish(t, m)
	watcher.ack(watcher.next(resource.RouteType), "r1")
	eventually(t, "r1 programmed after the watcher ACKed the new version", func() bool { return ts.RoutesProgrammed([]string{"r1"}) })
}
