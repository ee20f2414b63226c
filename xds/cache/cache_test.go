package cache

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

func route(name, domain string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{domain}}}}
}

func cluster(name string, timeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(timeout)}
}

func routes(kv ...string) map[string]types.Resource {
	out := map[string]types.Resource{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = route(kv[i], kv[i+1])
	}
	return out
}

func mustUpdate(t *testing.T, c *Cache, upsert map[string]types.Resource, remove ...string) uint64 {
	t.Helper()
	v, err := c.Update(upsert, remove)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func names(r *Result) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, res := range r.Resources {
		out = append(out, res.Name)
	}
	return out
}

// stream plays a go-control-plane stream: it asks, parks, and applies what it is sent.
type stream struct {
	t     *testing.T
	c     *Cache
	delta bool
	known Known
	got   chan *Result
	w     *Watch
}

func newStream(t *testing.T, c *Cache, delta bool) *stream {
	return &stream{t: t, c: c, delta: delta, got: make(chan *Result, 1)}
}

// ask cancels the open watch and asks for sub; it returns the immediate answer, if any.
func (s *stream) ask(sub *Set, evenEmpty bool) *Result {
	s.t.Helper()
	if s.w != nil {
		if v, ok := s.w.Cancel(); ok {
			s.known.Version = v
		}
		s.w = nil
	}
	res, w := s.c.Watch(Request{Sub: sub, Known: s.known, Delta: s.delta, ReplyEvenIfEmpty: evenEmpty}, func(r *Result) { s.got <- r })
	if res != nil {
		s.apply(res)
		return res
	}
	s.w = w
	s.known = Known{Set: sub, Version: w.ParkedAt()}
	return nil
}

func (s *stream) apply(r *Result) { s.known = Known{Set: r.Sub, Version: r.Version} }

// next is the answer a parked watch got, or nil.
func (s *stream) next() *Result {
	select {
	case r := <-s.got:
		s.w = nil
		s.apply(r)
		return r
	default:
		return nil
	}
}

func TestSubscribeAndUnsubscribe(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.RouteType, false)
	mustUpdate(t, c, routes("a", "1", "b", "1", "c", "1"))
	s := newStream(t, c, false)

	if got := names(s.ask(sets.FromList([]string{"a", "b"}, true), true)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first answer %v, want [a b]", got)
	}
	if r := s.ask(sets.FromList([]string{"a", "b"}, false), false); r != nil {
		t.Fatalf("the ACK was answered with %v", names(r))
	}
	// Subscribing to c sends c only (RDS is not full state); dropping b sends nothing.
	if got := names(s.ask(sets.FromList([]string{"a", "b", "c"}, false), false)); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after subscribing to c: %v, want [c]", got)
	}
	if r := s.ask(sets.FromList([]string{"a", "c"}, false), false); r != nil {
		t.Fatalf("unsubscribing from b was answered with %v", names(r))
	}
	// A change to b, no longer subscribed, does not wake the watch; one to c does.
	mustUpdate(t, c, routes("b", "2"))
	if r := s.next(); r != nil {
		t.Fatalf("a change to b reached a stream that left it: %v", names(r))
	}
	mustUpdate(t, c, routes("c", "2"))
	if got := names(s.next()); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after changing c: %v, want [c]", got)
	}
	// Subscribing again to b sends it, at its new content.
	r := s.ask(sets.FromList([]string{"a", "b", "c"}, false), false)
	if got := names(r); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after subscribing to b again: %v", got)
	}
	if d := r.Resources[0].Msg.(*routev3.RouteConfiguration).GetVirtualHosts()[0].GetDomains()[0]; d != "2" {
		t.Errorf("b sent at domain %s, want 2", d)
	}
}

func TestFullStateAndWildcard(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.ClusterType, true)
	mustUpdate(t, c, map[string]types.Resource{"a": cluster("a", time.Second), "b": cluster("b", time.Second)})
	named := newStream(t, c, false)
	all := newStream(t, c, false)
	if got := names(named.ask(sets.FromList([]string{"a", "x"}, true), true)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("named: %v", got)
	}
	if got := names(all.ask(sets.FromList(nil, true), true)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("wildcard: %v", got)
	}
	named.ask(sets.FromList([]string{"a", "x"}, false), false)
	all.ask(sets.FromList(nil, true), false)

	// A new cluster reaches the wildcard stream, with every other cluster (full state), and not
	// the named one; x, which the named stream asked for, reaches it with a.
	mustUpdate(t, c, map[string]types.Resource{"c": cluster("c", time.Second)})
	if got := names(all.next()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("wildcard after adding c: %v", got)
	}
	if r := named.next(); r != nil {
		t.Errorf("named stream got %v", names(r))
	}
	mustUpdate(t, c, map[string]types.Resource{"x": cluster("x", time.Second)})
	if got := names(named.next()); !slices.Equal(got, []string{"a", "x"}) {
		t.Errorf("named after adding x: %v", got)
	}
	// A removal is a change of the full state.
	named.ask(sets.FromList([]string{"a", "x"}, false), false)
	mustUpdate(t, c, nil, "x")
	if got := names(named.next()); !slices.Equal(got, []string{"a"}) {
		t.Errorf("named after removing x: %v", got)
	}
}

func TestDeltaRemovals(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.ClusterType, true)
	mustUpdate(t, c, map[string]types.Resource{"a": cluster("a", time.Second), "b": cluster("b", time.Second)})
	named := newStream(t, c, true)
	all := newStream(t, c, true)
	sub := sets.Of(false, "a", "b")
	if got := names(named.ask(sub, false)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("named: %v", got)
	}
	if got := names(all.ask(sets.Of(true), true)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("wildcard: %v", got)
	}
	named.ask(sub, false)
	all.ask(sets.Of(true), false)

	mustUpdate(t, c, map[string]types.Resource{"a": cluster("a", 2*time.Second)}, "b")
	for name, s := range map[string]*stream{"named": named, "wildcard": all} {
		r := s.next()
		if got := names(r); !slices.Equal(got, []string{"a"}) || !slices.Equal(r.Removed, []string{"b"}) {
			t.Errorf("%s: resources %v, removed %v; want [a], [b]", name, got, r.Removed)
		}
	}

	// A removal while the stream is between watches is told by the next one, from the log.
	named.ask(sub, false)
	mustUpdate(t, c, map[string]types.Resource{"b": cluster("b", time.Second)})
	if got := names(named.next()); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("b back: %v", got)
	}
	mustUpdate(t, c, nil, "b")
	r := named.ask(sub, false)
	if r == nil || len(r.Resources) != 0 || !slices.Equal(r.Removed, []string{"b"}) {
		t.Fatalf("after removing b between watches: %+v", r)
	}
	// A name that came and went while the stream was away is not told: it never had it.
	named.ask(sub, false)
	named.w.Cancel()
	mustUpdate(t, c, map[string]types.Resource{"b": cluster("b", time.Second)})
	mustUpdate(t, c, nil, "b")
	if r := named.ask(sub, false); r != nil {
		t.Fatalf("a resource the stream never had was told: %+v", r)
	}

	// A stream that reconnects with the versions it holds gets what differs, and the removal of
	// what it holds that is gone.
	re := newStream(t, c, true)
	re.known = Known{Initial: map[string]string{"a": "stale", "b": "x"}}
	r = re.ask(sub, false)
	if got := names(r); !slices.Equal(got, []string{"a"}) || !slices.Equal(r.Removed, []string{"b"}) {
		t.Fatalf("reconnect: resources %v, removed %v", got, r.Removed)
	}
	v := r.Resources[0].Delta.GetVersion()
	re2 := newStream(t, c, true)
	re2.known = Known{Initial: map[string]string{"a": v}}
	if r := re2.ask(sub, false); r != nil {
		t.Fatalf("a stream holding the current version was answered: %+v", r)
	}
}

func TestVersionsMoveOnlyOnChange(t *testing.T) {
	c := New(resource.RouteType, false)
	if v := mustUpdate(t, c, nil); v != 0 || c.Version() != 0 {
		t.Fatalf("an empty update moved the version to %d", v)
	}
	if v := mustUpdate(t, c, routes("a", "1")); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	if v := mustUpdate(t, c, routes("a", "2", "b", "1"), "zz"); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	created, _ := c.Created("a")
	if created != 1 {
		t.Errorf("a created at %d, want 1", created)
	}
	if r, ok := c.Get("a"); !ok || r.(*routev3.RouteConfiguration).GetVirtualHosts()[0].GetDomains()[0] != "2" {
		t.Errorf("Get(a) = %v", r)
	}
}

func TestCancelledWatchGetsNothing(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.RouteType, false)
	mustUpdate(t, c, routes("a", "1"))
	s := newStream(t, c, false)
	sub := sets.FromList([]string{"a"}, false)
	s.ask(sub, true)
	s.ask(sub, false)
	if s.w == nil {
		t.Fatal("the ACK was not parked")
	}
	v, ok := s.w.Cancel()
	if !ok || v != 1 {
		t.Fatalf("Cancel() = %d, %t; want 1, true", v, ok)
	}
	if _, again := s.w.Cancel(); again {
		t.Error("a second Cancel reported the watch parked")
	}
	mustUpdate(t, c, routes("a", "2"))
	if r := s.next(); r != nil {
		t.Fatalf("a cancelled watch got %v", names(r))
	}
	if len(c.parked) != 0 || len(c.byName) != 0 {
		t.Errorf("the cancelled watch is still indexed: %d sets, %d names", len(c.parked), len(c.byName))
	}
}

// Streams that ask the same get the same result, and a change reaches only the watches of the
// subscriptions that hold a changed name.
func TestResultsAreShared(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.RouteType, false)
	mustUpdate(t, c, routes("a", "1", "b", "1"))
	var ss []*stream
	for range 3 {
		s := newStream(t, c, false)
		s.ask(sets.FromList([]string{"a", "b"}, false), true)
		s.ask(sets.FromList([]string{"a", "b"}, false), false)
		ss = append(ss, s)
	}
	other := newStream(t, c, false)
	other.ask(sets.FromList([]string{"b"}, false), true)
	other.ask(sets.FromList([]string{"b"}, false), false)

	mustUpdate(t, c, routes("a", "2"))
	first := ss[0].next()
	for _, s := range ss[1:] {
		if r := s.next(); r != first {
			t.Errorf("streams with one subscription got different results")
		}
	}
	if len(first.Anys()) != 1 || first.Anys()[0] != first.Resources[0].Any {
		t.Error("the result does not carry the cached Any")
	}
	if r := other.next(); r != nil {
		t.Errorf("a stream not subscribed to a got %v", names(r))
	}
}

func TestOldStreamIsResent(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.RouteType, false)
	mustUpdate(t, c, routes("a", "1", "b", "1"))
	sub := sets.FromList([]string{"a"}, false)
	s := newStream(t, c, false)
	s.ask(sub, true)
	known := s.known
	for i := range maxLogVersions + 1 {
		mustUpdate(t, c, routes("b", fmt.Sprint(i)))
	}
	// Older than the log, the stream's subscription is compared resource by resource.
	s.known = known
	if r := s.ask(sub, false); r != nil {
		t.Errorf("a stream older than the log, whose resources did not change, got %v", names(r))
	}
	mustUpdate(t, c, routes("a", "2"))
	for i := range maxLogVersions + 1 {
		mustUpdate(t, c, routes("b", fmt.Sprint(i)))
	}
	s.w.Cancel()
	s.w, s.known = nil, known
	if got := names(s.ask(sub, false)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a stream older than the log got %v, want [a]", got)
	}
}

func TestSetsAreInterned(t *testing.T) {
	sets := NewSets(nil)
	a := sets.FromList([]string{"x", "y"}, false)
	if b := sets.FromList([]string{"x", "y"}, false); b != a {
		t.Error("the same list gave two sets")
	}
	if b := sets.FromList([]string{"y", "x", "x"}, false); b != a {
		t.Error("the same names in another order gave another set")
	}
	if b := sets.Apply(sets.Of(false, "x"), []string{"y"}, nil); b != a {
		t.Error("a delta subscription to the same names gave another set")
	}
	if w := sets.FromList(nil, true); !w.Wildcard() || w == sets.FromList(nil, false) {
		t.Error("legacy wildcard")
	}
	if w := sets.FromList([]string{"*", "x"}, false); !w.Wildcard() || !w.Named("x") || w.Named("y") || !w.Has("y") {
		t.Error("explicit wildcard")
	}
	if u := sets.Apply(sets.Of(true, "x"), nil, []string{"*", "x"}); u.Wildcard() || u.Len() != 0 {
		t.Error("unsubscribing from the wildcard")
	}
	runtime.KeepAlive(a)
	// Sets nobody refers to leave the table.
	for i := range 100 {
		sets.FromList([]string{fmt.Sprint("gone-", i)}, false)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sets.Len() > 10 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := sets.Len(); n > 10 {
		t.Errorf("%d sets in the table after collecting the unused ones", n)
	}
}

// Publishing, watching and cancelling concurrently: every stream ends up with the last version
// of what it asks for. Run with -race.
func TestConcurrentPublishAndWatch(t *testing.T) {
	sets := NewSets(nil)
	c := New(resource.RouteType, false)
	all := []string{"a", "b", "c", "d"}
	mustUpdate(t, c, routes("a", "0", "b", "0", "c", "0", "d", "0"))
	const rounds = 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newStream(t, c, i%2 == 0)
			sub := sets.FromList(all[:1+i%4], false)
			s.ask(sub, true)
			for {
				select {
				case <-done:
					if s.w != nil {
						s.w.Cancel()
					}
					return
				case r := <-s.got:
					s.w = nil
					s.apply(r)
					_ = r.Anys()
					_ = r.DeltaResources()
					_ = r.Names()
					s.ask(sub, false)
				default:
					s.ask(sub, false) // a request that repeats the subscription
					runtime.Gosched()
				}
			}
		}()
	}
	for i := range rounds {
		mustUpdate(t, c, routes(all[i%4], fmt.Sprint(i)))
	}
	close(done)
	wg.Wait()
	if v := c.Version(); v != rounds+1 {
		t.Errorf("version %d, want %d", v, rounds+1)
	}
}
