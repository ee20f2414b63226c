package server

import (
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// routeVersions remembers the route cache version that last changed each route configuration, so
// that a caller can ask whether the proxies apply a change (a Rollout's new weight). It has its own
// lock because Publish holds pubMu through its warm waits.
type routeVersions struct {
	mu     sync.RWMutex
	byName map[string]uint64
}

func (r *routeVersions) set(names []string, version uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[string]uint64{}
	}
	for _, n := range names {
		if version == 0 {
			delete(r.byName, n)
		} else {
			r.byName[n] = version
		}
	}
}

func (r *routeVersions) get(name string) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.byName[name]
	return v, ok
}

// RoutesProgrammed reports whether the proxies connected to this server apply the published
// content of every named route configuration: each is published, and every open stream that
// subscribes to it has ACKed the route version that last changed it (a NACK or a lagging proxy
// means no). A route nobody subscribes to counts as programmed: no proxy here uses it. Proxies
// connected to other replicas are not seen (docs/rollouts.md says what that means).
func (s *Server) RoutesProgrammed(names []string) bool {
	want := make(map[string]uint64, len(names))
	for _, n := range names {
		v, ok := s.routeVersions.get(n)
		if !ok {
			return false
		}
		want[n] = v
	}
	for _, st := range s.proxies.streamList() {
		if !st.appliesRoutes(want) {
			return false
		}
	}
	return true
}

// appliesRoutes reports whether the stream is closed, subscribes to none of the routes, or has
// ACKed a route version at least as new as each one it subscribes to.
func (st *stream) appliesRoutes(want map[string]uint64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rt := st.types[resource.RouteType]
	if st.closed || rt == nil {
		return true
	}
	for name, version := range want {
		if !rt.sub.Has(name) {
			continue
		}
		if rt.acked < version {
			return false
		}
	}
	return true
}
