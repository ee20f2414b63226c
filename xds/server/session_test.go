package server

import (
	"slices"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// streamOf is the tracker's stream of node id.
func (ts *testServer) streamOf(t *testing.T, id string) *stream {
	t.Helper()
	for _, st := range ts.proxies.streamList() {
		st.mu.Lock()
		got := st.nodeID()
		st.mu.Unlock()
		if got == id {
			return st
		}
	}
	t.Fatalf("no stream of %s", id)
	return nil
}

// sub is the subscription the tracker holds for a stream and type.
func (ts *testServer) sub(t *testing.T, id, typeURL string) *xcache.Set {
	t.Helper()
	st := ts.streamOf(t, id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.types[typeURL] == nil {
		return nil
	}
	return st.types[typeURL].sub
}

func setNames(s *xcache.Set) []string { return slices.Sorted(s.Names()) }

func TestToken(t *testing.T) {
	s := &session{id: 42}
	id, seq, ok := parseToken(s.token(7))
	if !ok || id != 42 || seq != 7 {
		t.Errorf("parseToken(token(7)) = %d, %d, %t", id, seq, ok)
	}
	for _, bad := range []string{"", "r1", tokenPrefix, tokenPrefix + "1", tokenPrefix + "x:1"} {
		if _, _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) succeeded", bad)
		}
	}
}

// Streams that subscribe to the same names, in any order and over either protocol, share one
// subscription Set; an ACK that repeats the names keeps it.
func TestStreamsShareSubscriptions(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.routes["r2"] = "c1"
	ts.publish(t, m)
	conn := ts.dial(t)
	a := newSotwClient(t, conn, testNode("a", envoy.FlavourGRPC))
	b := newSotwClient(t, conn, testNode("b", envoy.FlavourGRPC))
	d := newDeltaClient(t, conn, testNode("d", envoy.FlavourGRPC))
	a.fetch(resource.RouteType, "r1", "r2")
	b.fetch(resource.RouteType, "r2", "r1")
	d.subscribe(resource.RouteType, "r2", "r1")
	d.ack(d.next(resource.RouteType))
	var subs []*xcache.Set
	for _, id := range []string{"a", "b", "d"} {
		eventually(t, "the ACK of "+id, func() bool {
			p := ts.streamOf(t, id)
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.types[resource.RouteType].ackedVersion != ""
		})
		subs = append(subs, ts.sub(t, id, resource.RouteType))
	}
	if subs[0] != subs[1] || subs[0] != subs[2] {
		t.Errorf("equal subscriptions are not shared: %p %p %p", subs[0], subs[1], subs[2])
	}
	if got := setNames(subs[0]); !slices.Equal(got, []string{"r1", "r2"}) || subs[0].Wildcard() {
		t.Errorf("subscription %v (wildcard %t)", got, subs[0].Wildcard())
	}
}

// A state-of-the-world stream whose first request names nothing asks for everything; once it
// has named resources, an empty list asks for nothing (go-control-plane's legacy wildcard).
func TestSotwLegacyWildcard(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.clusters = []string{"c1", "c2"}
	ts.publish(t, m)
	c := newSotwClient(t, ts.dial(t), testNode("envoy-1", ""))
	if got := responseNames(t, c.fetch(resource.ClusterType)); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("legacy wildcard got %v", got)
	}
	if s := ts.sub(t, "envoy-1", resource.ClusterType); !s.Wildcard() {
		t.Error("an empty first request is not a wildcard")
	}
	c.subscribe(resource.ClusterType, "c1")
	if got := responseNames(t, c.next(resource.ClusterType)); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("named c1 got %v", got)
	}
	c.subscribe(resource.ClusterType)
	eventually(t, "the empty request", func() bool {
		s := ts.sub(t, "envoy-1", resource.ClusterType)
		return !s.Wildcard() && s.Len() == 0
	})
}

// A delta stream's subscription follows its subscribe and unsubscribe lists; a change to a
// resource it left is not sent.
func TestDeltaSubscriptionChanges(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.clusters = []string{"c1", "c2", "c3"}
	ts.publish(t, m)
	d := newDeltaClient(t, ts.dial(t), testNode("grpc-1", envoy.FlavourGRPC))
	d.subscribe(resource.ClusterType, "c1", "c2")
	r := d.next(resource.ClusterType)
	if got := deltaNames(r); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("got %v", got)
	}
	d.ack(r)
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNamesSubscribe: []string{"c3"}, ResourceNamesUnsubscribe: []string{"c2"}})
	r = d.next(resource.ClusterType)
	if got := deltaNames(r); !slices.Equal(got, []string{"c3"}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("after subscribing to c3: %v, removed %v", got, r.GetRemovedResources())
	}
	d.ack(r)
	eventually(t, "the subscription", func() bool {
		return slices.Equal(setNames(ts.sub(t, "grpc-1", resource.ClusterType)), []string{"c1", "c3"})
	})
	// c2 goes: the stream, which left it, hears nothing; c3 goes: it is told.
	m = m.clone()
	m.clusters = []string{"c1", "c3"}
	ts.publish(t, m)
	m = m.clone()
	m.clusters = []string{"c1"}
	ts.publish(t, m)
	r = d.next(resource.ClusterType)
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"c3"}) {
		t.Fatalf("after removing c2 and c3: resources %v, removed %v", deltaNames(r), r.GetRemovedResources())
	}
}

// What a stream holds follows its ACKs: a rejected resource is not held until an ACKed response
// carries it again.
func TestHeldFollowsACKs(t *testing.T) {
	ts := startServer(t, Options{WarmTimeout: -1})
	ts.publish(t, baseMesh())
	c := newSotwClient(t, ts.dial(t), testNode("grpc-1", envoy.FlavourGRPC))
	c.fetch(resource.EndpointType, "c1")
	holds := func(name string) bool {
		st := ts.streamOf(t, "grpc-1")
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.types[resource.EndpointType].holdsAll(map[string]struct{}{name: {}}, ts.caches[resource.EndpointType])
	}
	eventually(t, "c1 held", func() bool { return holds("c1") })

	m := baseMesh()
	m.clusters = []string{"c1", "c2"}
	ts.publish(t, m)
	c.subscribe(resource.EndpointType, "c1", "c2")
	r := c.next(resource.EndpointType)
	c.nack(r, "1", "bad", "c1", "c2")
	eventually(t, "the NACK", func() bool { return ts.envoyProxyNACK(t, "grpc-1", resource.EndpointType) })
	if holds("c2") {
		t.Error("a rejected resource counts as held")
	}
	if !holds("c1") {
		t.Error("c1, held before, no longer is")
	}
	m = m.clone()
	m.endpointPort = 9090
	ts.publish(t, m)
	c.ack(c.next(resource.EndpointType), "c1", "c2")
	eventually(t, "c2 held after an ACK that carries it", func() bool { return holds("c2") })
}

func (ts *testServer) envoyProxyNACK(t *testing.T, id, typeURL string) bool {
	t.Helper()
	for _, p := range ts.Proxies() {
		if p.NodeID == id {
			return p.Types[typeURL].NACK != nil
		}
	}
	return false
}
