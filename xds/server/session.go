package server

import (
	"context"
	"strconv"
	"strings"
	"sync"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
)

// A session is one gRPC xDS stream as this server sees it, next to go-control-plane's view of it.
// go-control-plane's servers keep, per stream and type, a map of the subscribed names, rebuilt on
// every request: with thousands of names per proxy that is most of a proxy's cost. So the session
// reads each request as it arrives, turns its subscription into a shared xcache.Set, and hands
// go-control-plane the request with one name instead: a token that names the session and the
// request. The request callbacks (the tracker) and the cache adapter (watcher.go) find the Set
// through the token. go-control-plane's own subscription state is not used.

// tokenPrefix starts every token; no resource name starts with a NUL byte.
const tokenPrefix = "\x00sluice:"

type session struct {
	id uint64
	// defaultType is the type of a per-type service stream, "" for ADS.
	defaultType string
	sets        *xcache.Sets

	// Recv side: the subscriptions as the requests build them, by type.
	seq        uint64
	legacyOver map[string]bool        // the stream named resources: an empty list no longer means wildcard
	lastList   map[string]sotwList    // sotw: the last list and its Set
	deltaSubs  map[string]*xcache.Set // delta: the subscription so far
	lastToken  map[string]string      // delta: the token go-control-plane holds, to unsubscribe it

	mu      sync.Mutex
	handoff []handoff // read, not yet taken by the request callback

	// types is the per-type state of the processing side (go-control-plane's stream goroutine).
	types map[string]*sessionType

	// auth is who the stream is and what it may ask for (auth.go); Recv side. refused reports a
	// refusal, once per stream.
	auth       streamAuth
	refused    func(*refusal)
	refusedYet bool
}

// refuse notes that a request of the stream is refused; the request callback ends the stream.
func (s *session) refuse(r *refusal) *refusal {
	if r != nil && !s.refusedYet {
		s.refusedYet = true
		if s.refused != nil {
			s.refused(r)
		}
	}
	return r
}

// handoff carries what a request asks for from the Recv goroutine to the processing goroutine.
type handoff struct {
	seq     uint64
	typeURL string
	sub     *xcache.Set
	initial map[string]string // delta initial_resource_versions
	resync  bool              // delta: names unsubscribed from a wildcard must be sent again
	refusal *refusal          // the request is refused: the stream ends with its error
}

// sessionType is what the session knows of one type, on the processing goroutine only.
type sessionType struct {
	sub   *xcache.Set
	known xcache.Known
	// sent is the result of the response being sent, for the response callback.
	sent *xcache.Result
}

func (s *session) typeState(typeURL string) *sessionType {
	st := s.types[typeURL]
	if st == nil {
		st = &sessionType{}
		s.types[typeURL] = st
	}
	return st
}

func (s *session) token(seq uint64) string {
	return tokenPrefix + strconv.FormatUint(s.id, 10) + ":" + strconv.FormatUint(seq, 10)
}

// parseToken reads the session id and request number of a token.
func parseToken(tok string) (id, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(tok, tokenPrefix)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return id, seq, err1 == nil && err2 == nil
}

// hand queues what request seq asks for.
func (s *session) hand(h handoff) {
	s.mu.Lock()
	s.handoff = append(s.handoff, h)
	s.mu.Unlock()
}

// take applies request seq (and drops older requests go-control-plane did not pass on) to the
// processing side's state, and returns its type state, or the error that refuses it. It is called
// by the request callback, before go-control-plane creates the request's watch.
func (s *session) take(seq uint64) (*sessionType, error) {
	s.mu.Lock()
	var h *handoff
	i := 0
	for ; i < len(s.handoff) && s.handoff[i].seq <= seq; i++ {
		if s.handoff[i].seq == seq {
			h = &s.handoff[i]
		}
	}
	var got handoff
	if h != nil {
		got = *h
	}
	s.handoff = append(s.handoff[:0], s.handoff[i:]...)
	s.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	if got.refusal != nil {
		return nil, got.refusal.err
	}
	st := s.typeState(got.typeURL)
	st.sub = got.sub
	if got.initial != nil {
		st.known = xcache.Known{Initial: got.initial}
	}
	if got.resync {
		st.known = xcache.Known{}
	}
	return st, nil
}

// sessions finds the sessions of the open streams by id.
type sessions struct {
	mu   sync.RWMutex
	last uint64
	byID map[uint64]*session
}

func (r *sessions) open(defaultType string, sets *xcache.Sets, auth streamAuth, refused func(*refusal)) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[uint64]*session{}
	}
	r.last++
	s := &session{
		id: r.last, defaultType: defaultType, sets: sets,
		legacyOver: map[string]bool{}, lastList: map[string]sotwList{},
		deltaSubs: map[string]*xcache.Set{}, lastToken: map[string]string{},
		types: map[string]*sessionType{},
		auth:  auth, refused: refused,
	}
	r.byID[s.id] = s
	return s
}

func (r *sessions) close(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, s.id)
}

func (r *sessions) get(id uint64) *session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// byToken finds the session and its type state for a request go-control-plane passes on.
func (r *sessions) byToken(names []string, typeURL string) (*session, *sessionType) {
	if len(names) != 1 {
		return nil, nil
	}
	id, _, ok := parseToken(names[0])
	if !ok {
		return nil, nil
	}
	s := r.get(id)
	if s == nil {
		return nil, nil
	}
	return s, s.types[typeURL]
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}
