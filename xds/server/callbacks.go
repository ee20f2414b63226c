package server

import (
	"context"
	"slices"
	"strconv"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callbacks are the callbacks of the go-control-plane servers of one Serve call. Every callback of
// a stream runs on the goroutine that serves it; the stream's lock guards against the readers
// (Proxies, the warm wait). The sotw and delta servers number their streams independently (and
// anew for each Serve), so a stream is known by its key.
type callbacks struct {
	t     *tracker
	serve uint64
}

var (
	_ sotw.Callbacks  = callbacks{}
	_ delta.Callbacks = callbacks{}
)

// streamKey names a stream across the go-control-plane servers.
type streamKey struct {
	serve uint64
	delta bool
	id    int64
}

func (c callbacks) sotwKey(id int64) streamKey { return streamKey{serve: c.serve, id: id} }
func (c callbacks) deltaKey(id int64) streamKey {
	return streamKey{serve: c.serve, delta: true, id: id}
}

// OnStreamOpen registers a state-of-the-world stream.
func (c callbacks) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	c.t.open(ctx, c.sotwKey(id), typeURL)
	return nil
}

// OnDeltaStreamOpen registers a delta stream.
func (c callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	c.t.open(ctx, c.deltaKey(id), typeURL)
	return nil
}

// OnStreamClosed forgets a state-of-the-world stream.
func (c callbacks) OnStreamClosed(id int64, _ *core.Node) { c.t.close(c.sotwKey(id)) }

// OnDeltaStreamClosed forgets a delta stream.
func (c callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) { c.t.close(c.deltaKey(id)) }

// OnStreamRequest handles a state-of-the-world request: node, subscription, ACK or NACK.
func (c callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	node, err := c.t.node(c.sotwKey(id), req.GetNode())
	if err != nil {
		return err
	}
	req.Node = node
	return c.t.request(c.sotwKey(id), request{
		typeURL: req.GetTypeUrl(),
		nonce:   req.GetResponseNonce(),
		version: req.GetVersionInfo(),
		errInfo: req.GetErrorDetail(),
		token:   req.GetResourceNames(),
	})
}

// OnStreamDeltaRequest handles a delta request: node, subscription, ACK or NACK.
func (c callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	// The delta server calls this before it fills in the node of later requests: do it here.
	node, err := c.t.node(c.deltaKey(id), req.GetNode())
	if err != nil {
		return err
	}
	req.Node = node
	return c.t.request(c.deltaKey(id), request{
		typeURL: req.GetTypeUrl(),
		nonce:   req.GetResponseNonce(),
		errInfo: req.GetErrorDetail(),
		token:   req.GetResourceNamesSubscribe(),
	})
}

// OnStreamResponse remembers a state-of-the-world response until the proxy answers it.
func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.t.sent(c.sotwKey(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

// OnStreamDeltaResponse remembers a delta response until the proxy answers it.
func (c callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.t.sent(c.deltaKey(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

func (t *tracker) open(ctx context.Context, key streamKey, typeURL string) {
	st := &stream{
		id:          t.lastID.Add(1),
		delta:       key.delta,
		defaultType: typeURL,
		openedAt:    time.Now(),
		types:       map[string]*typeState{},
		session:     sessionFrom(ctx),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		st.address = p.Addr.String()
	}
	t.mu.Lock()
	t.streams[key] = st
	t.mu.Unlock()
}

func (t *tracker) close(key streamKey) {
	t.mu.Lock()
	st := t.streams[key]
	delete(t.streams, key)
	t.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	st.closed = true
	if st.node != nil {
		t.srv.metrics.connectedProxies.WithLabelValues(string(st.flavour)).Dec()
	}
	st.mu.Unlock()
	t.signal.notify()
}

func (t *tracker) get(key streamKey) *stream {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.streams[key]
}

// node returns the node of the stream: learnt from its first request, which must carry it with an
// id. A later request may repeat the node but not change its flavour.
func (t *tracker) node(key streamKey, n *core.Node) (*core.Node, error) {
	st := t.get(key)
	if st == nil {
		return nil, status.Errorf(codes.Internal, "unknown xDS stream %d", key.id)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.node == nil && n.GetId() == "" {
		// The sotw server hands an empty node to a first request that has none.
		return nil, status.Error(codes.InvalidArgument, "the first request of an xDS stream must carry the node, with its id")
	}
	if n == nil {
		return st.node, nil
	}
	f, err := nodeFlavour(n)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if st.node == nil {
		st.node, st.flavour = n, f
		t.srv.metrics.connectedProxies.WithLabelValues(string(f)).Inc()
		return n, nil
	}
	if f != st.flavour {
		return nil, status.Errorf(codes.InvalidArgument, "node flavour changed from %q to %q within a stream", st.flavour, f)
	}
	return n, nil
}

// request is what the tracker needs of a sotw or delta request.
type request struct {
	typeURL string
	nonce   string
	version string // sotw: version_info, the last version the client accepted
	errInfo *rpcstatus.Status
	// token is what the session left of the subscription: the names that carry its token.
	token []string
}

func (t *tracker) request(key streamKey, req request) error {
	st := t.get(key)
	if st == nil {
		return status.Errorf(codes.Internal, "unknown xDS stream %d", key.id)
	}
	if req.typeURL == "" {
		// The delta server fills in the type of a non-ADS stream after this callback.
		req.typeURL = st.defaultType
	}
	if req.typeURL == "" {
		return nil // an ADS request without type: the server rejects it
	}
	if !served(req.typeURL) {
		return status.Errorf(codes.InvalidArgument, "this xDS server does not serve %s", req.typeURL)
	}

	var nack *NACK
	var converged time.Duration
	st.mu.Lock()
	ts := st.types[req.typeURL]
	if ts == nil {
		ts = &typeState{}
		st.types[req.typeURL] = ts
	}
	sst, err := st.takeRequest(req.token)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	if sst != nil {
		ts.sub = sst.sub
	}
	if req.nonce != "" {
		answered := ts.take(req.nonce)
		if req.errInfo != nil {
			nack = st.nackLocked(req, ts, answered)
		} else {
			converged = t.ackLocked(st, req, ts, answered)
		}
	}
	st.mu.Unlock()

	kind := typeNames[req.typeURL]
	if converged > 0 {
		t.srv.metrics.convergence.WithLabelValues(kind).Observe(converged.Seconds())
	}
	if nack != nil {
		t.srv.metrics.nacks.WithLabelValues(kind).Inc()
		t.recordNACK(*nack)
		t.srv.log.Info("Proxy rejected xDS resources", "node", nack.NodeID, "type", kind,
			"version", nack.Version, "resources", nack.Resources, "error", nack.Message)
		if t.srv.opts.OnNACK != nil {
			t.srv.opts.OnNACK(*nack)
		}
	}
	// Publish may be waiting for this stream to take new clusters or routes (warm waits).
	t.signal.notify()
	return nil
}

// takeRequest applies the subscription of the request that carries token (see session.go) and
// returns the session's state of its type (nil for a stream without session), or the error that
// refuses the request.
func (st *stream) takeRequest(token []string) (*sessionType, error) {
	if st.session == nil || len(token) != 1 {
		return nil, nil
	}
	_, seq, ok := parseToken(token[0])
	if !ok {
		return nil, nil
	}
	return st.session.take(seq)
}

// take returns the response a request answers (by nonce) and forgets it and every older one.
func (ts *typeState) take(nonce string) *sentResponse {
	for i, p := range ts.pending {
		if p.nonce == nonce {
			ts.pending = slices.Delete(ts.pending, 0, i+1)
			return p
		}
	}
	if ts.last != nil && ts.last.nonce == nonce {
		return ts.last
	}
	return nil
}

func (st *stream) nackLocked(req request, ts *typeState, rejected *sentResponse) *NACK {
	n := &NACK{
		NodeID:   st.nodeID(),
		Flavour:  st.flavour,
		StreamID: st.id,
		TypeURL:  req.typeURL,
		Nonce:    req.nonce,
		Message:  req.errInfo.GetMessage(),
		Time:     time.Now(),
	}
	if rejected == nil {
		// Not a response we remember: blame the last one sent.
		rejected = ts.last
	}
	if rejected != nil {
		n.Version = rejected.version
		n.Resources = slices.Clone(rejected.names())
		if v, ok := parseVersion(rejected.version); ok && v > ts.nacked {
			ts.nacked = v
		}
	}
	ts.nack = n
	return n
}

// ackLocked records an ACK and returns the convergence time to observe (0 for none).
func (t *tracker) ackLocked(st *stream, req request, ts *typeState, acked *sentResponse) time.Duration {
	version := req.version // sotw fallback when the response is no longer remembered
	if acked != nil {
		version = acked.version
	}
	if acked != nil && acked.res != nil {
		ts.heldSub, ts.heldVersion = acked.res.Sub, acked.res.Version
	}
	if version == "" {
		return 0
	}
	v, numeric := parseVersion(version)
	if numeric && v < ts.acked {
		return 0 // a late answer to an older response
	}
	ts.ackedVersion = version
	if ts.nack != nil && acked != nil && ((!st.delta && cache.ResourceRequiresFullStateInSotw(req.typeURL)) ||
		covers(acked.names(), ts.nack.Resources)) {
		ts.nack = nil
	}
	if !numeric || v == ts.acked {
		return 0
	}
	ts.acked = v
	rec, ok := t.srv.history.lookup(cacheKey(req.typeURL, st.flavour), v)
	if !ok || rec.published.Before(st.openedAt) {
		// Unknown, or published before the stream opened: the initial fetch is not a convergence.
		return 0
	}
	return max(time.Since(rec.trigger), time.Nanosecond)
}

// covers reports whether every name of want is in have (both sorted).
func covers(have, want []string) bool {
	for _, w := range want {
		if _, found := slices.BinarySearch(have, w); !found {
			return false
		}
	}
	return true
}

func parseVersion(v string) (uint64, bool) {
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// sent remembers a response on its way to the proxy: its nonce, version and the shared result
// the session built it from.
func (t *tracker) sent(key streamKey, typeURL, nonce, version string) {
	t.srv.metrics.pushes.WithLabelValues(typeNames[typeURL]).Inc()
	st := t.get(key)
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	ts := st.types[typeURL]
	if ts == nil {
		ts = &typeState{}
		st.types[typeURL] = ts
	}
	r := &sentResponse{nonce: nonce, version: version}
	if st.session != nil {
		if sst := st.session.types[typeURL]; sst != nil {
			r.res, sst.sent = sst.sent, nil
		}
	}
	if len(ts.pending) >= maxPending {
		ts.pending = slices.Delete(ts.pending, 0, 1)
	}
	ts.pending = append(ts.pending, r)
	ts.last = r
	ts.sentVersion = r.version
}
