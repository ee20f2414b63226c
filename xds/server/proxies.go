package server

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
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
	// intern holds the published names, which the subscription Sets share (intern.go).
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

	// session is the stream's session (session.go), which holds its subscriptions.
	session *session

	mu      sync.Mutex
	closed  bool
	node    *core.Node
	flavour envoy.Flavour
	types   map[string]*typeState
}

// typeState is a stream's state for one type URL. Nothing in it grows with the names a proxy
// subscribes to: the subscription and what the proxy holds are shared xcache Sets.
type typeState struct {
	// sub is the subscription, as the client asked for it (nil before its first request).
	sub *xcache.Set

	sentVersion  string
	ackedVersion string
	acked        uint64 // ackedVersion as a number; 0 if none
	nacked       uint64 // version of the last NACKed response; 0 if none
	nack         *NACK

	// heldSub and heldVersion are the subscription and cache version of the last response the
	// client ACKed: it holds every resource of heldSub published at heldVersion (the cache sends
	// each stream what it lacks of its subscription), except those of nack.
	heldSub     *xcache.Set
	heldVersion uint64

	// pending are the responses sent and not answered yet, oldest first; last is the newest sent.
	pending []*sentResponse
	last    *sentResponse
}

// sentResponse is what the tracker keeps of a sent response: its nonce, version and the result
// it was built from, which is shared with every stream that got the same answer.
type sentResponse struct {
	nonce   string
	version string
	res     *xcache.Result
}

// names lists the resources a response carried (for delta: updated and removed), sorted. The
// slice is shared: it must not be changed.
func (r *sentResponse) names() []string {
	if r.res == nil {
		return nil
	}
	return r.res.Names()
}

// watches reports whether the subscription covers any of names.
func (ts *typeState) watches(names map[string]struct{}) bool {
	if ts.sub.Wildcard() {
		return true
	}
	for n := range names {
		if ts.sub.Has(n) {
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

// clustersWarm reports whether the stream has nothing more to do with the cluster version of its
// flavour's cache (targets) for the clusters added there (names): it is closed, does not watch any
// of them, or has ACKed or NACKed that version or a later one.
func (st *stream) clustersWarm(targets map[envoy.Flavour]uint64, names map[envoy.Flavour]map[string]struct{}) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	ts, target := st.types[resource.ClusterType], targets[st.flavour]
	return st.closed || ts == nil || !ts.watches(names[st.flavour]) || ts.acked >= target || ts.nacked >= target
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

// holdsAll reports whether the client has accepted every one of names, published in c.
func (ts *typeState) holdsAll(names map[string]struct{}, c *xcache.Cache) bool {
	for n := range names {
		if !ts.sub.Has(n) || !ts.heldSub.Has(n) {
			return false
		}
		if created, ok := c.Created(n); !ok || created > ts.heldVersion {
			return false
		}
		if ts.nack != nil {
			if _, rejected := slices.BinarySearch(ts.nack.Resources, n); rejected {
				return false
			}
		}
	}
	return true
}

// needsWarmRoutes reports whether the stream watches any of routes, asks on the same stream for
// clusters by name (as proxyless gRPC does; a wildcard cluster watcher got the new clusters in
// Publish's cluster step), and does not hold every one of clusters with its endpoints yet.
func (st *stream) needsWarmRoutes(routes, clusters map[string]struct{}, caches map[string]*xcache.Cache) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rt, ct := st.types[resource.RouteType], st.types[resource.ClusterType]
	if st.closed || rt == nil || !rt.watches(routes) || ct == nil || ct.sub.Wildcard() {
		return false
	}
	return !st.holdsLocked(clusters, caches)
}

// routesWarm reports whether Publish need not wait for this stream any longer: it is closed, it
// rejected route version target, or it accepted that version and holds the clusters and endpoints
// of every one of clusters.
func (st *stream) routesWarm(target uint64, clusters map[string]struct{}, caches map[string]*xcache.Cache) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rt := st.types[resource.RouteType]
	if st.closed || rt == nil || rt.nacked >= target {
		return true
	}
	return rt.acked >= target && st.holdsLocked(clusters, caches)
}

// holdsLocked reports whether the stream holds the clusters and their endpoints.
func (st *stream) holdsLocked(clusters map[string]struct{}, caches map[string]*xcache.Cache) bool {
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		ts := st.types[typ]
		if ts == nil || !ts.holdsAll(clusters, caches[cacheKey(typ, st.flavour)]) {
			return false
		}
	}
	return true
}
