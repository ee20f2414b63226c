package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
)

// watcher is the cache go-control-plane's servers see: it picks the xcache.Cache of a request
// (classify) and asks it with the subscription and known state of the request's session. Every
// call comes from the stream's processing goroutine, as do the calls of the responses it
// makes, so the session's type state needs no lock.
type watcher struct{ s *Server }

var _ cache.Cache = watcher{}

func (w watcher) lookup(names []string, typeURL, key string) (*xcache.Cache, *sessionType, error) {
	_, st := w.s.sessions.byToken(names, typeURL)
	if st == nil || st.sub == nil {
		return nil, nil, fmt.Errorf("xDS request for %s without its session", typeURL)
	}
	c := w.s.caches[key]
	if c == nil {
		return nil, nil, fmt.Errorf("no cache for %s", key)
	}
	return c, st, nil
}

// CreateWatch answers a state-of-the-world request.
func (w watcher) CreateWatch(req *cache.Request, _ cache.Subscription, ch chan cache.Response) (func(), error) {
	c, st, err := w.lookup(req.GetResourceNames(), req.GetTypeUrl(), classify(req.GetTypeUrl(), req.GetNode()))
	if err != nil {
		return nil, err
	}
	respond := func(r *xcache.Result) { ch <- &sotwResponse{req: req, res: r, st: st} }
	res, wt := c.Watch(xcache.Request{Sub: st.sub, Known: st.known, ReplyEvenIfEmpty: req.GetVersionInfo() == ""}, respond)
	if res != nil {
		respond(res)
		return func() {}, nil
	}
	return parked(st, wt), nil
}

// CreateDeltaWatch answers a delta request.
func (w watcher) CreateDeltaWatch(req *cache.DeltaRequest, _ cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	c, st, err := w.lookup(req.GetResourceNamesSubscribe(), req.GetTypeUrl(), classify(req.GetTypeUrl(), req.GetNode()))
	if err != nil {
		return nil, err
	}
	respond := func(r *xcache.Result) { ch <- &deltaResponse{req: req, res: r, st: st} }
	xr := xcache.Request{Sub: st.sub, Known: st.known, Delta: true, ReplyEvenIfEmpty: st.sub.Wildcard() && req.GetResponseNonce() == ""}
	res, wt := c.Watch(xr, respond)
	if res != nil {
		respond(res)
		return nil, nil
	}
	return parked(st, wt), nil
}

// parked notes that the stream holds its subscription as of the watch's version, and returns
// the watch's cancel: if nothing took the watch by then, the stream holds it as of that time.
func parked(st *sessionType, wt *xcache.Watch) func() {
	st.known = xcache.Known{Set: st.sub, Version: wt.ParkedAt()}
	sub := st.sub
	return func() {
		if v, ok := wt.Cancel(); ok && st.known.Set == sub {
			st.known.Version = v
		}
	}
}

// Fetch is the REST polling API, which this server does not serve (neither did LinearCache).
func (watcher) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("fetch is not implemented by the sluice xDS cache")
}

// sotwResponse is a state-of-the-world response. Its resources are shared with the other
// streams that get the same answer; the DiscoveryResponse itself is the stream's own (the server
// sets its nonce).
type sotwResponse struct {
	req *cache.Request
	res *xcache.Result
	st  *sessionType
}

var _ cache.Response = (*sotwResponse)(nil)

// GetDiscoveryResponse is called by go-control-plane when, and only when, it sends the response
// (a response it drops, superseded by a new request, is never built): so this is where the
// stream's known state moves.
func (r *sotwResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	r.st.known = xcache.Known{Set: r.res.Sub, Version: r.res.Version}
	r.st.sent = r.res
	return &discovery.DiscoveryResponse{
		VersionInfo: r.GetResponseVersion(),
		Resources:   r.res.Anys(),
		TypeUrl:     r.req.GetTypeUrl(),
	}, nil
}

func (r *sotwResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)             { return r.GetResponseVersion(), nil }
func (r *sotwResponse) GetResponseVersion() string {
	return strconv.FormatUint(r.res.Version, 10)
}

// GetReturnedResources is nil: what the stream holds is in its session, not in go-control-plane's
// subscription.
func (r *sotwResponse) GetReturnedResources() map[string]string { return nil }
func (r *sotwResponse) GetContext() context.Context             { return context.Background() }

// deltaResponse is a delta response; see sotwResponse.
type deltaResponse struct {
	req *cache.DeltaRequest
	res *xcache.Result
	st  *sessionType
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse is called when the response is sent; see sotwResponse.
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	r.st.known = xcache.Known{Set: r.res.Sub, Version: r.res.Version}
	r.st.sent = r.res
	resp := &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: r.GetResponseVersion(),
		Resources:         r.res.DeltaResources(),
		RemovedResources:  r.res.Removed,
		TypeUrl:           r.req.GetTypeUrl(),
	}
	if resp.TypeUrl == resource.SecretType {
		wireSecretNames(resp)
	}
	return resp, nil
}

// wireSecretNames gives the node's default secret its name on the wire (a delta response names
// its resources; a state-of-the-world one carries the secret, which is named default already). The
// shared resources are copied, not changed.
func wireSecretNames(resp *discovery.DeltaDiscoveryResponse) {
	for i, res := range resp.Resources {
		if name := wireSecretName(res.GetName()); name != res.GetName() {
			resp.Resources = slices.Clone(resp.Resources)
			resp.Resources[i] = &discovery.Resource{Name: name, Version: res.GetVersion(), Resource: res.GetResource()}
		}
	}
	for i, name := range resp.RemovedResources {
		if wire := wireSecretName(name); wire != name {
			resp.RemovedResources = slices.Clone(resp.RemovedResources)
			resp.RemovedResources[i] = wire
		}
	}
}

func (r *deltaResponse) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                 { return r.GetResponseVersion(), nil }
func (r *deltaResponse) GetResponseVersion() string {
	return strconv.FormatUint(r.res.Version, 10)
}
func (r *deltaResponse) GetNextVersionMap() map[string]string    { return nil }
func (r *deltaResponse) GetReturnedResources() map[string]string { return nil }
func (r *deltaResponse) GetContext() context.Context             { return context.Background() }
