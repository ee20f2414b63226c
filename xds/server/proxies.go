package server

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// ProxyStatus is one xDS stream of a connected proxy. A proxy with several streams (ADS plus
// per-type streams, or a reconnect that overlaps the old stream) has several.
type ProxyStatus struct {
	NodeID         string        `json:"nodeID"`
	Cluster        string        `json:"cluster,omitempty"`
	Flavour        envoy.Flavour `json:"flavour"`
	UserAgent      string        `json:"userAgent,omitempty"`
	Address        string        `json:"address,omitempty"`
	StreamID       int64         `json:"streamID"`
	Delta          bool          `json:"delta"`
	ConnectedSince time.Time     `json:"connectedSince"`
	// Types holds the state of every type URL the stream has asked for.
	Types map[string]TypeStatus `json:"types"`
}

// TypeStatus is the state of one resource type on one stream.
type TypeStatus struct {
	// SentVersion is the version of the last response sent; AckedVersion the last one ACKed.
	SentVersion  string `json:"sentVersion,omitempty"`
	AckedVersion string `json:"ackedVersion,omitempty"`
	// NACK is the last rejection, until a later response that carries the rejected resources
	// again (or, for state-of-the-world listeners and clusters, any later response) is ACKed.
	NACK *NACK `json:"nack,omitempty"`
}

// NACK is a response a proxy rejected.
type NACK struct {
	NodeID   string        `json:"nodeID"`
	Flavour  envoy.Flavour `json:"flavour"`
	StreamID int64         `json:"streamID"`
	TypeURL  string        `json:"typeURL"`
	// Version and Nonce identify the rejected response.
	Version string `json:"version,omitempty"`
	Nonce   string `json:"nonce,omitempty"`
	// Resources are the names of the resources in the rejected response, sorted.
	Resources []string  `json:"resources,omitempty"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
}

// maxPending bounds the unanswered responses remembered per stream and type.
const maxPending = 16

// tracker follows every xDS stream through the go-control-plane callbacks (callbacks.go).
type tracker struct {
	srv *Server
	// intern shares the names of published resources between the streams' name sets.
	intern *interner

	mu      sync.RWMutex
	streams map[streamKey]*stream
	lastID  atomic.Int64 // stream ids of ProxyStatus, unique in the Server
	serves  atomic.Uint64

	nacksMu sync.Mutex
	nacks   []NACK // ring
	nackPos int    // next slot once the ring is full

	// signal wakes the warm wait of Publish when cluster ACKs come in or streams close.
	signal notifier
}

func newTracker(srv *Server) *tracker {
	return &tracker{srv: srv, intern: newInterner(), streams: map[streamKey]*stream{}}
}

// stream is one xDS stream. Its fields are guarded by mu, except the ones set at open.
type stream struct {
	id          int64 // the tracker's, not go-control-plane's
	delta       bool
	defaultType string // "" for ADS
	address     string
	openedAt    time.Time

	mu      sync.Mutex
	closed  bool
	node    *core.Node
	flavour envoy.Flavour
	types   map[string]*typeState
}

// typeState is a stream's state for one type URL.
type typeState struct {
	// Subscription, as the client asked for it.
	wildcard bool
	names    map[string]struct{}
	// namesHash is the fingerprint (listHash) of the state-of-the-world request names was built
	// from, so that a request that repeats the subscription leaves names as it is.
	namesHash uint64

	sentVersion  string
	ackedVersion string
	acked        uint64 // ackedVersion as a number; 0 if none
	nacked       uint64 // version of the last NACKed response; 0 if none
	nack         *NACK

	// held are the resources the client has ACKed and still subscribes to. heldOutside tells
	// that held may have names the subscription does not have (forgetUnsubscribed has work).
	held        map[string]struct{}
	heldOutside bool

	// pending are the responses sent and not answered yet, oldest first; last is the newest sent.
	pending []*sentResponse
	last    *sentResponse
}

// sentResponse is what the tracker keeps of a sent response: not the response (its resources
// are the caches' and go-control-plane's), only what an ACK or NACK of it needs. The names are
// worked out once, when the response is sent, and shared with the other streams (interner).
type sentResponse struct {
	nonce   string
	version string
	// resources are the names of the resources the response carried, in its order; removed the
	// names a delta response removed.
	resources []string
	removed   []string
}

// sentSotw is what the tracker keeps of a state-of-the-world response.
func (t *tracker) sentSotw(resp *discovery.DiscoveryResponse) *sentResponse {
	r := &sentResponse{nonce: resp.GetNonce(), version: resp.GetVersionInfo()}
	if res := resp.GetResources(); len(res) > 0 {
		r.resources = make([]string, len(res))
		t.intern.lookup(func(_ func(string) string, internBytes func([]byte) string) {
			for i, a := range res {
				r.resources[i] = internBytes(resourceNameBytes(a.GetValue()))
			}
		})
	}
	return r
}

// sentDelta is what the tracker keeps of a delta response.
func (t *tracker) sentDelta(resp *discovery.DeltaDiscoveryResponse) *sentResponse {
	r := &sentResponse{nonce: resp.GetNonce(), version: resp.GetSystemVersionInfo()}
	res, removed := resp.GetResources(), resp.GetRemovedResources()
	if len(res) == 0 && len(removed) == 0 {
		return r
	}
	t.intern.lookup(func(intern func(string) string, _ func([]byte) string) {
		if len(res) > 0 {
			r.resources = make([]string, len(res))
			for i, x := range res {
				r.resources[i] = intern(x.GetName())
			}
		}
		if len(removed) > 0 {
			r.removed = make([]string, len(removed))
			for i, name := range removed {
				r.removed[i] = intern(name)
			}
		}
	})
	return r
}

// names lists the resources a response carried (for delta: updated and removed), sorted, in a
// new slice.
func (r *sentResponse) names() []string {
	if len(r.resources)+len(r.removed) == 0 {
		return nil
	}
	out := make([]string, 0, len(r.resources)+len(r.removed))
	out = append(out, r.resources...)
	out = append(out, r.removed...)
	slices.Sort(out)
	return slices.Compact(out)
}

// resourceName reads the name of a serialized resource without decoding it: field 1 is the name
// of every served type (cluster_name for ClusterLoadAssignment).
func resourceName(a *anypb.Any) string { return string(resourceNameBytes(a.GetValue())) }

// resourceNameBytes is resourceName of the serialized resource b, in b; nil if it has none.
func resourceNameBytes(b []byte) []byte {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil
			}
			return v
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil
		}
		b = b[n:]
	}
	return nil
}

// watches reports whether the subscription covers any of names.
func (ts *typeState) watches(names map[string]struct{}) bool {
	if ts.wildcard {
		return true
	}
	for n := range names {
		if _, ok := ts.names[n]; ok {
			return true
		}
	}
	return false
}

func (st *stream) nodeID() string { return st.node.GetId() }

// Proxies lists the streams whose node is known, sorted by node id, then stream id.
func (s *Server) Proxies() []ProxyStatus {
	t := s.proxies
	t.mu.RLock()
	streams := slices.Collect(maps.Values(t.streams))
	t.mu.RUnlock()

	out := make([]ProxyStatus, 0, len(streams))
	for _, st := range streams {
		st.mu.Lock()
		if st.node != nil {
			out = append(out, st.statusLocked())
		}
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.StreamID, b.StreamID))
	})
	return out
}

func (st *stream) statusLocked() ProxyStatus {
	p := ProxyStatus{
		NodeID:         st.node.GetId(),
		Cluster:        st.node.GetCluster(),
		Flavour:        st.flavour,
		Address:        st.address,
		StreamID:       st.id,
		Delta:          st.delta,
		ConnectedSince: st.openedAt,
		Types:          make(map[string]TypeStatus, len(st.types)),
	}
	p.UserAgent = userAgent(st.node)
	for url, ts := range st.types {
		p.Types[url] = TypeStatus{SentVersion: ts.sentVersion, AckedVersion: ts.ackedVersion, NACK: ts.nack}
	}
	return p
}

// userAgent is "name/version", e.g. "envoy/1.37.0" or "gRPC Go/1.85.0".
func userAgent(n *core.Node) string {
	ua := n.GetUserAgentName()
	if v := n.GetUserAgentVersion(); v != "" {
		return ua + "/" + v
	}
	if v := n.GetUserAgentBuildVersion().GetVersion(); v != nil {
		return fmt.Sprintf("%s/%d.%d.%d", ua, v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	}
	return ua
}

// NACKs returns the recent NACKs, oldest first (at most Options.NACKHistory).
func (s *Server) NACKs() []NACK {
	t := s.proxies
	t.nacksMu.Lock()
	defer t.nacksMu.Unlock()
	out := make([]NACK, 0, len(t.nacks))
	out = append(out, t.nacks[t.nackPos:]...)
	return append(out, t.nacks[:t.nackPos]...)
}

func (t *tracker) recordNACK(n NACK) {
	t.nacksMu.Lock()
	defer t.nacksMu.Unlock()
	if len(t.nacks) < t.srv.opts.NACKHistory {
		t.nacks = append(t.nacks, n)
		return
	}
	t.nacks[t.nackPos] = n
	t.nackPos = (t.nackPos + 1) % len(t.nacks)
}

// streamList returns every open stream.
func (t *tracker) streamList() []*stream {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Collect(maps.Values(t.streams))
}

// clustersWarm reports whether the stream has nothing more to do with cluster version target for
// the clusters named: it is closed, does not watch any of them, or has ACKed or NACKed target or a
// later version.
func (st *stream) clustersWarm(target uint64, names map[string]struct{}) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	ts := st.types[resource.ClusterType]
	return st.closed || ts == nil || !ts.watches(names) || ts.acked >= target || ts.nacked >= target
}

// notifier is a broadcast: wait returns a channel that the next notify closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// holds records that the client accepted the resources of a response.
func (ts *typeState) holds(r *sentResponse) {
	if ts.held == nil {
		ts.held = map[string]struct{}{}
	}
	for _, name := range r.resources {
		ts.held[name] = struct{}{}
		if !ts.heldOutside && !ts.wildcard {
			if _, ok := ts.names[name]; !ok {
				ts.heldOutside = true
			}
		}
	}
	for _, name := range r.removed {
		delete(ts.held, name)
	}
}

// forgetUnsubscribed drops held resources the client no longer subscribes to.
func (ts *typeState) forgetUnsubscribed() {
	if ts.wildcard {
		return
	}
	for name := range ts.held {
		if _, ok := ts.names[name]; !ok {
			delete(ts.held, name)
		}
	}
	ts.heldOutside = false
}

// holdsAll reports whether the client has accepted every one of names.
func (ts *typeState) holdsAll(names map[string]struct{}) bool {
	for n := range names {
		if _, ok := ts.held[n]; !ok {
			return false
		}
	}
	return true
}

// needsWarmRoutes reports whether the stream watches any of routes, asks on the same stream for
// clusters by name (as proxyless gRPC does; a wildcard cluster watcher got the new clusters in
// Publish's cluster step), and does not hold every one of clusters with its endpoints yet.
func (st *stream) needsWarmRoutes(routes, clusters map[string]struct{}) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rt, ct := st.types[resource.RouteType], st.types[resource.ClusterType]
	if st.closed || rt == nil || !rt.watches(routes) || ct == nil || ct.wildcard {
		return false
	}
	return !st.holdsLocked(clusters)
}

// routesWarm reports whether Publish need not wait for this stream any longer: it is closed, it
// rejected route version target, or it accepted that version and holds the clusters and endpoints
// of every one of clusters.
func (st *stream) routesWarm(target uint64, clusters map[string]struct{}) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rt := st.types[resource.RouteType]
	if st.closed || rt == nil || rt.nacked >= target {
		return true
	}
	return rt.acked >= target && st.holdsLocked(clusters)
}

func (st *stream) holdsLocked(clusters map[string]struct{}) bool {
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		ts := st.types[typ]
		if ts == nil || !ts.holdsAll(clusters) {
			return false
		}
	}
	return true
}

// subSeed seeds the fingerprints of state-of-the-world subscriptions.
var subSeed = maphash.MakeSeed()

// listHash is a fingerprint of a list of names, in order.
func listHash(names []string) uint64 {
	var h maphash.Hash
	h.SetSeed(subSeed)
	var n [8]byte
	for _, name := range names {
		l := uint64(len(name))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(name)
	}
	return h.Sum64()
}
