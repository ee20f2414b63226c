package server

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
)

func nameSet(m map[string]struct{}) []string { return slices.Sorted(maps.Keys(m)) }

// A state-of-the-world request that repeats the subscription keeps the name set; any other list
// (even with the same length and names, or the same set in another order) gives the set it names.
func TestSotwSubscriptionIsRebuiltOnlyWhenItChanges(t *testing.T) {
	in := newInterner()
	ts := &typeState{names: map[string]struct{}{}}
	ts.subscribe(request{names: []string{"a", "b"}}, in)
	first := reflect.ValueOf(ts.names).Pointer()
	ts.subscribe(request{names: []string{"a", "b"}}, in)
	if reflect.ValueOf(ts.names).Pointer() != first || !slices.Equal(nameSet(ts.names), []string{"a", "b"}) {
		t.Errorf("a repeated subscription rebuilt the set: %v", nameSet(ts.names))
	}
	ts.subscribe(request{names: []string{"b", "a"}}, in)
	if !slices.Equal(nameSet(ts.names), []string{"a", "b"}) || ts.wildcard {
		t.Errorf("names = %v, wildcard %v", nameSet(ts.names), ts.wildcard)
	}
	ts.subscribe(request{names: []string{"a", "a"}}, in)
	if !slices.Equal(nameSet(ts.names), []string{"a"}) {
		t.Errorf("names after [a a] = %v", nameSet(ts.names))
	}
	ts.subscribe(request{names: []string{"a", "*"}}, in)
	if !slices.Equal(nameSet(ts.names), []string{"a"}) || !ts.wildcard {
		t.Errorf("names after [a *] = %v, wildcard %v", nameSet(ts.names), ts.wildcard)
	}
	ts.subscribe(request{names: []string{"a", "*"}}, in)
	if !ts.wildcard {
		t.Error("a repeated wildcard subscription lost the wildcard")
	}
	ts.subscribe(request{names: []string{"a"}}, in)
	if ts.wildcard {
		t.Error("still wildcard after [a]")
	}
}

// Held names outside the subscription (an answered response computed for an older one) are
// forgotten on the next request, also when that request repeats the subscription.
func TestHeldNamesFollowTheSubscription(t *testing.T) {
	in := newInterner()
	ts := &typeState{names: map[string]struct{}{}}
	ts.subscribe(request{names: []string{"a"}}, in)
	ts.holds(&sentResponse{resources: []string{"a", "c"}})
	if !slices.Equal(nameSet(ts.held), []string{"a", "c"}) {
		t.Fatalf("held = %v", nameSet(ts.held))
	}
	ts.subscribe(request{names: []string{"a"}}, in)
	if !slices.Equal(nameSet(ts.held), []string{"a"}) {
		t.Errorf("held after a repeated request = %v", nameSet(ts.held))
	}

	d := &typeState{names: map[string]struct{}{}}
	d.subscribe(request{delta: true, subscribe: []string{"a", "b"}}, in)
	d.holds(&sentResponse{resources: []string{"a", "b"}})
	d.subscribe(request{delta: true, subscribe: []string{"c"}}, in)
	if !slices.Equal(nameSet(d.held), []string{"a", "b"}) {
		t.Errorf("held after subscribing to more = %v", nameSet(d.held))
	}
	d.subscribe(request{delta: true, unsubscribe: []string{"b"}}, in)
	if !slices.Equal(nameSet(d.held), []string{"a"}) {
		t.Errorf("held after unsubscribing b = %v", nameSet(d.held))
	}
	d.holds(&sentResponse{resources: []string{"x"}, removed: []string{"a"}})
	d.subscribe(request{delta: true}, in)
	if len(d.held) != 0 {
		t.Errorf("held after a removal and an ACK = %v", nameSet(d.held))
	}
}

// The tracker keeps the names of a sent response, not the response, and they share the string
// data of the published names, as do the subscription and held sets.
func TestTrackerSharesPublishedNames(t *testing.T) {
	published := strings.Clone("c1")
	tr := &tracker{intern: newInterner()}
	tr.intern.update(map[string]types.Resource{published: nil}, nil)
	same := func(s string) bool { return unsafe.StringData(s) == unsafe.StringData(published) }

	m := baseMesh().snapshot(t)
	r := tr.sentSotw(&discovery.DiscoveryResponse{Nonce: "n", VersionInfo: "3", Resources: []*anypb.Any{
		mustAny(t, m.Clusters["c1"]), mustAny(t, testEndpoints("c9", 80)),
	}})
	if r.nonce != "n" || r.version != "3" || !slices.Equal(r.resources, []string{"c1", "c9"}) || !same(r.resources[0]) {
		t.Errorf("sotw response kept as %+v", r)
	}
	ts := &typeState{names: map[string]struct{}{}}
	ts.subscribe(request{names: []string{strings.Clone("c1")}}, tr.intern)
	ts.holds(r)
	for n := range ts.names {
		if !same(n) {
			t.Error("the subscription has its own copy of c1")
		}
	}
	for n := range ts.held {
		if n == "c1" && !same(n) {
			t.Error("held has its own copy of c1")
		}
	}

	d := tr.sentDelta(&discovery.DeltaDiscoveryResponse{Nonce: "d", SystemVersionInfo: "4",
		Resources:        []*discovery.Resource{{Name: "z"}, {Name: strings.Clone("c1")}},
		RemovedResources: []string{"b", "z"}})
	if d.nonce != "d" || d.version != "4" || !same(d.resources[1]) {
		t.Errorf("delta response kept as %+v", d)
	}
	names := d.names()
	if !slices.Equal(names, []string{"b", "c1", "z"}) {
		t.Errorf("names() = %v", names)
	}
	names[0] = "changed"
	if !slices.Equal(d.names(), []string{"b", "c1", "z"}) {
		t.Error("names() shares its slice")
	}
	if (&sentResponse{}).names() != nil {
		t.Error("names() of an empty response is not nil")
	}

	tr.intern.update(nil, []string{"c1"})
	if got := tr.sentDelta(&discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{{Name: strings.Clone("c1")}}}); same(got.resources[0]) {
		t.Error("a forgotten name is still shared")
	}
}
