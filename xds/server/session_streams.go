package server

import (
	"context"
	"weak"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsstream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
)

// The gRPC streams as go-control-plane's servers see them: each request's subscription becomes a
// Set of the session (session.go) on the goroutine that reads the stream, and the request goes on
// with the token in place of the names.

// sotwList is a request's list of names and the Set it gave. A list the codec shares (codec.go)
// comes back as the very same slice, so an ACK finds its Set without reading the names. The
// slice is held weakly: a session does not keep a list alive, and a list that is gone cannot be
// mistaken for a new one at the same address.
type sotwList struct {
	first  weak.Pointer[string]
	n      int
	legacy bool
	sub    *xcache.Set
}

func newSotwList(names []string, legacy bool, sub *xcache.Set) sotwList {
	l := sotwList{n: len(names), legacy: legacy, sub: sub}
	if len(names) > 0 {
		l.first = weak.Make(&names[0])
	}
	return l
}

func (l sotwList) same(names []string, legacy bool) bool {
	return l.sub != nil && l.legacy == legacy && l.n == len(names) && len(names) > 0 && l.first.Value() == &names[0]
}

// sotwStream is a state-of-the-world stream seen through its session.
type sotwStream struct {
	xdsstream.Stream
	s   *session
	ctx context.Context
}

func (w *sotwStream) Context() context.Context { return w.ctx }

// Recv turns the request's names into a Set and replaces them with the token. Requests without a
// type on ADS are passed on as they are: go-control-plane rejects them.
func (w *sotwStream) Recv() (*discovery.DiscoveryRequest, error) {
	req, err := w.Stream.Recv()
	if err != nil || req == nil {
		return req, err
	}
	s := w.s
	refused := s.auth.admitNode(req.GetNode())
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		typeURL = s.defaultType
	}
	if typeURL == "" {
		return req, nil
	}
	names := req.GetResourceNames()
	legacy := !s.legacyOver[typeURL]
	if len(names) > 0 {
		s.legacyOver[typeURL] = true
	}
	last := s.lastList[typeURL]
	if refused == nil && !last.same(names, legacy) {
		cached := names
		if typeURL == resource.SecretType {
			cached, refused = s.auth.secretNames(names, legacy && len(names) == 0)
		}
		if refused == nil {
			last = newSotwList(names, legacy, s.sets.FromList(cached, legacy))
			s.lastList[typeURL] = last
		}
	}
	s.seq++
	s.hand(handoff{seq: s.seq, typeURL: typeURL, sub: last.sub, refusal: s.refuse(refused)})
	req.ResourceNames = []string{s.token(s.seq)}
	return req, nil
}

// deltaStream is a delta stream seen through its session.
type deltaStream struct {
	xdsstream.DeltaStream
	s   *session
	ctx context.Context
}

func (w *deltaStream) Context() context.Context { return w.ctx }

// Recv applies the request's subscription changes to the stream's Set and replaces them with the
// token (and unsubscribes the previous token, so go-control-plane holds one name).
func (w *deltaStream) Recv() (*discovery.DeltaDiscoveryRequest, error) {
	req, err := w.DeltaStream.Recv()
	if err != nil || req == nil {
		return req, err
	}
	s := w.s
	refused := s.auth.admitNode(req.GetNode())
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		typeURL = s.defaultType
	}
	if typeURL == "" {
		return req, nil
	}
	sub, unsub := req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe()
	h := handoff{typeURL: typeURL}
	cur, seen := s.deltaSubs[typeURL]
	if refused == nil && typeURL == resource.SecretType {
		// The first request without names is the legacy wildcard.
		sub, refused = s.auth.secretNames(sub, !seen && len(sub) == 0)
		unsub = s.auth.unsubscribedSecrets(unsub)
	}
	if refused != nil {
		s.seq++
		h.seq, h.refusal = s.seq, s.refuse(refused)
		s.hand(h)
		req.ResourceNamesSubscribe = []string{s.token(s.seq)}
		req.ResourceNamesUnsubscribe, req.InitialResourceVersions = nil, nil
		return req, nil
	}
	switch {
	case !seen:
		// go-control-plane's legacy wildcard: a first request that subscribes to nothing.
		cur = s.sets.Of(len(sub) == 0)
		if len(sub) > 0 {
			s.legacyOver[typeURL] = true
			cur = s.sets.Apply(cur, sub, unsub)
		}
		if len(req.GetInitialResourceVersions()) > 0 {
			h.initial = req.GetInitialResourceVersions()
		}
	case !s.legacyOver[typeURL] && len(sub) == 0:
		// Still the legacy wildcard: unsubscribing means nothing yet.
	case len(sub) > 0 || len(unsub) > 0:
		s.legacyOver[typeURL] = true
		h.resync = cur.Wildcard() && len(unsub) > 0
		cur = s.sets.Apply(cur, sub, unsub)
	}
	s.deltaSubs[typeURL] = cur
	s.seq++
	h.seq, h.sub = s.seq, cur
	s.hand(h)
	tok := s.token(s.seq)
	req.ResourceNamesSubscribe = []string{tok}
	req.ResourceNamesUnsubscribe = nil
	if prev := s.lastToken[typeURL]; prev != "" {
		req.ResourceNamesUnsubscribe = []string{prev}
	}
	s.lastToken[typeURL] = tok
	req.InitialResourceVersions = nil
	return req, nil
}
