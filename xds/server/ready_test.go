package server

import (
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// A proxy that connects to a replica that has not published yet (a restart) is told nothing
// until the first snapshot: an answer from the empty caches would say its listener does not
// exist, and it would drop the configuration it serves with.
func TestStreamsWaitForTheFirstSnapshot(t *testing.T) {
	ts := startServer(t, Options{WarmTimeout: -1})
	c := newSotwClient(t, ts.dial(t), testNode("early", envoy.FlavourGRPC))
	c.subscribe(resource.ListenerType, "l-grpc")
	time.Sleep(200 * time.Millisecond)
	c.noResponse()

	ts.publish(t, baseMesh())
	resp := c.next(resource.ListenerType)
	if got := decode(t, resp.GetResources()); len(got) != 1 || got["l-grpc"] == nil {
		t.Fatalf("after the first snapshot the listener should arrive, got %v", got)
	} else if _, ok := got["l-grpc"].(*listenerv3.Listener); !ok {
		t.Fatalf("l-grpc is a %T", got["l-grpc"])
	}
}
