package server

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// publishedResource is a resource as it is in its cache.
type publishedResource struct {
	msg  types.Resource
	size int
}

// change is what one Publish does to one cache.
type change struct {
	upsert map[string]types.Resource
	added  []string // the names in upsert that were not published before
	remove []string
}

// Publish makes snap the configuration served to proxies. It is the only writer of the caches and
// is serialised: concurrent calls run one after the other. trigger is when the change that led to
// snap happened (e.g. the watch event); it is the start of the convergence time reported when the
// proxies ACK the change. A zero trigger means now.
//
// snap is validated first; if it is invalid Publish changes nothing (proxies keep the last good
// configuration) and returns the error. Otherwise each resource is compared with the published one
// (the same message is unchanged; another one is compared with proto.Equal) and only added,
// changed and removed resources are pushed, make-before-break:
//
//  1. add/update secrets, endpoints, clusters;
//  2. if step 1 added clusters and routes or listeners change, wait until every connected proxy
//     that watches any of the new clusters has ACKed (or NACKed) the cluster version of step 1, or
//     Options.WarmTimeout passes;
//  3. for changed routes that now send traffic to clusters they did not use, push them as they
//     were plus warm-up routes to those clusters and wait, like step 2, until the proxies that
//     watch them hold the clusters and their endpoints (see warmup.go);
//  4. add/update routes, then listeners;
//  5. remove listeners, then routes, that went away;
//  6. remove clusters, endpoints, secrets that went away.
//
// Publish keeps references to the resources of snap: the caller must not change them afterwards.
// Validation and comparison cost in proportion to the messages that are not in the previous
// snapshot, so a caller that changes few resources should pass the unchanged ones as the same
// messages (envoy.Translator does).
func (s *Server) Publish(snap *envoy.Snapshot, trigger time.Time) error {
	if trigger.IsZero() {
		trigger = time.Now()
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()

	desired, err := flatten(snap, &s.validator)
	if err != nil {
		s.metrics.rejections.Inc()
		return fmt.Errorf("xDS snapshot rejected, proxies keep the previous configuration: %w", err)
	}
	changes := make(map[string]*change, len(s.caches))
	for key := range s.caches {
		changes[key] = s.diff(key, desired[key])
	}

	var errs []error
	upsert := func(key string) {
		errs = append(errs, s.apply(key, changes[key].upsert, nil, trigger))
	}
	remove := func(key string) {
		errs = append(errs, s.apply(key, nil, changes[key].remove, trigger))
	}

	upsert(resource.SecretType)
	upsert(resource.EndpointType)
	for _, f := range envoy.Flavours {
		upsert(clusterKey(f))
	}
	if routingChanges(changes) {
		targets, added := map[envoy.Flavour]uint64{}, map[envoy.Flavour][]string{}
		for _, f := range envoy.Flavours {
			if a := changes[clusterKey(f)].added; len(a) > 0 {
				targets[f], added[f] = s.versions[clusterKey(f)], a
			}
		}
		if len(added) > 0 {
			s.waitClustersWarm(targets, added)
		}
	}
	if warm, incoming := s.warmRoutes(changes[resource.RouteType].upsert); len(warm) > 0 {
		if pending := s.streamsNeedingWarmup(warm, incoming); len(pending) > 0 {
			errs = append(errs, s.apply(resource.RouteType, warm, nil, trigger))
			s.waitRoutesWarm(s.versions[resource.RouteType], pending, incoming)
		}
	}
	upsert(resource.RouteType)
	for _, f := range envoy.Flavours {
		upsert(listenerKey(f))
	}
	for _, f := range envoy.Flavours {
		remove(listenerKey(f))
	}
	remove(resource.RouteType)
	for _, f := range envoy.Flavours {
		remove(clusterKey(f))
	}
	remove(resource.EndpointType)
	remove(resource.SecretType)

	s.updateSnapshotMetrics()
	err = errors.Join(errs...)
	if err == nil {
		s.readyOnce.Do(func() { close(s.ready) })
	}
	return err
}

// routingChanges reports whether routes or listeners are added or changed.
func routingChanges(changes map[string]*change) bool {
	if len(changes[resource.RouteType].upsert) > 0 {
		return true
	}
	for _, f := range envoy.Flavours {
		if len(changes[listenerKey(f)].upsert) > 0 {
			return true
		}
	}
	return false
}

// diff compares the wanted resources of one cache with the published ones.
func (s *Server) diff(key string, want map[string]types.Resource) *change {
	have := s.published[key]
	c := &change{upsert: map[string]types.Resource{}}
	for name, msg := range want {
		old, ok := have[name]
		switch {
		case !ok:
			c.added = append(c.added, name)
			c.upsert[name] = msg
		case old.msg == msg:
			// The very message that is published (the caller must not change published messages).
		case !proto.Equal(old.msg, msg):
			c.upsert[name] = msg
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			c.remove = append(c.remove, name)
		}
	}
	slices.Sort(c.added)
	slices.Sort(c.remove)
	return c
}

// apply writes one batch to one cache: a new cache version.
func (s *Server) apply(key string, upsert map[string]types.Resource, remove []string, trigger time.Time) error {
	if len(upsert) == 0 && len(remove) == 0 {
		return nil
	}
	// Versions are recorded before the cache answers any watch, so that an ACK that comes back at
	// once finds its trigger time, and RoutesProgrammed never sees an ACK of the new version
	// before it knows that version changed the route.
	_, err := s.caches[key].UpdateThen(upsert, remove, func(v uint64) {
		s.versions[key] = v
		s.history.add(key, versionRecord{version: v, trigger: trigger, published: time.Now()})
		if key == resource.RouteType {
			s.recordRouteVersions(upsert, remove)
		}
	})
	if err != nil {
		return fmt.Errorf("updating %s cache: %w", typeNames[typeOfKey(key)], err)
	}

	have := s.published[key]
	for name, msg := range upsert {
		size := proto.Size(msg)
		if s.sharedWithFirstFlavour(key, name, msg) {
			size = 0 // counted once, in the first flavour's cache
		}
		s.publishedBytes += size - have[name].size
		have[name] = publishedResource{msg: msg, size: size}
	}
	var gone []string
	for _, name := range remove {
		s.publishedBytes -= have[name].size
		delete(have, name)
		if !s.publishes(name) {
			gone = append(gone, name)
		}
	}
	s.proxies.intern.update(upsert, gone)
	return nil
}

// sharedWithFirstFlavour reports whether msg, to be published under name in the cache of key, is
// the very message the first flavour's cache of the same type holds: the clusters that no flavour
// overrides are shared by every flavour's cache, and are counted once in the snapshot metrics.
// Publish updates flavours in envoy.Flavours order, so the first flavour's cache is current.
func (s *Server) sharedWithFirstFlavour(key, name string, msg types.Resource) bool {
	typeURL := typeOfKey(key)
	first := cacheKey(typeURL, envoy.Flavours[0])
	if !perFlavour(typeURL) || key == first {
		return false
	}
	p, ok := s.published[first][name]
	return ok && p.msg == msg
}

// recordRouteVersions notes the version that changed routes. Warm-up routes (pushed before the
// real change) are recorded too and overwritten by the real push right after.
func (s *Server) recordRouteVersions(upsert map[string]types.Resource, remove []string) {
	names := make([]string, 0, len(upsert))
	for n := range upsert {
		names = append(names, n)
	}
	s.routeVersions.set(names, s.versions[resource.RouteType])
	s.routeVersions.set(remove, 0)
}

// publishes reports whether any cache holds a resource of that name.
func (s *Server) publishes(name string) bool {
	for _, have := range s.published {
		if _, ok := have[name]; ok {
			return true
		}
	}
	return false
}

// waitClustersWarm waits until no stream that was open when it started still has to ACK the
// cluster version of its flavour's cache (targets) for the clusters added there, or until
// Options.WarmTimeout. Streams that open during the wait fetch the new clusters with their first
// cluster request; they are not waited for.
func (s *Server) waitClustersWarm(targets map[envoy.Flavour]uint64, added map[envoy.Flavour][]string) {
	names := make(map[envoy.Flavour]map[string]struct{}, len(added))
	for f, a := range added {
		names[f] = make(map[string]struct{}, len(a))
		for _, n := range a {
			names[f][n] = struct{}{}
		}
	}
	s.waitFor(s.proxies.streamList(), func(st *stream) bool { return st.clustersWarm(targets, names) },
		"Proxies did not ACK new clusters in time; pushing routes and listeners anyway", "clusterVersions", targets)
}

// waitFor waits until done holds for every stream of pending (checked again on every request and
// stream close), or until Options.WarmTimeout. It never fails: on timeout it logs why and returns,
// and the push goes on.
func (s *Server) waitFor(pending []*stream, done func(*stream) bool, timeoutMsg string, keysAndValues ...any) {
	if s.opts.WarmTimeout < 0 {
		return
	}
	timer := time.NewTimer(s.opts.WarmTimeout)
	defer timer.Stop()
	for {
		// Take the signal channel before looking, so an ACK in between is not missed.
		changed := s.proxies.signal.wait()
		pending = slices.DeleteFunc(pending, done)
		if len(pending) == 0 {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			s.metrics.warmTimeouts.Inc()
			s.log.Info(timeoutMsg, append(keysAndValues, "timeout", s.opts.WarmTimeout, "pending", len(pending), "nodes", nodeIDs(pending, 10))...)
			return
		}
	}
}

// nodeIDs lists the node ids of up to max streams.
func nodeIDs(streams []*stream, maxIDs int) []string {
	var ids []string
	for _, st := range streams[:min(len(streams), maxIDs)] {
		st.mu.Lock()
		ids = append(ids, st.nodeID())
		st.mu.Unlock()
	}
	return ids
}

// flatten validates snap (with v, which skips re-checking the messages it already validated alone)
// and sorts its resources by cache key.
func flatten(snap *envoy.Snapshot, v *envoy.Validator) (map[string]map[string]types.Resource, error) {
	if snap == nil {
		return nil, errors.New("nil snapshot")
	}
	if err := snap.ValidateWith(v); err != nil {
		return nil, err
	}
	out := make(map[string]map[string]types.Resource, len(cacheKeys()))
	for _, key := range cacheKeys() {
		out[key] = map[string]types.Resource{}
	}
	var errs []error
	for f, listeners := range snap.Listeners {
		if !slices.Contains(envoy.Flavours, f) {
			errs = append(errs, fmt.Errorf("listeners for unknown flavour %q", f))
			continue
		}
		errs = collect(out[listenerKey(f)], listeners, errs)
	}
	errs = collect(out[resource.RouteType], snap.Routes, errs)
	for f := range snap.ClusterOverrides {
		if !slices.Contains(envoy.Flavours, f) {
			errs = append(errs, fmt.Errorf("clusters for unknown flavour %q", f))
		}
	}
	for _, f := range envoy.Flavours {
		errs = collect(out[clusterKey(f)], snap.ClustersOf(f), errs)
	}
	errs = collect(out[resource.EndpointType], snap.Endpoints, errs)
	errs = collect(out[resource.SecretType], snap.Secrets, errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	addDefaultAliases(out[resource.SecretType])
	return out, nil
}

// collect copies in into out, checking that every resource is set and is named by its key.
func collect[T types.Resource](out map[string]types.Resource, in map[string]T, errs []error) []error {
	for name, msg := range in {
		if !msg.ProtoReflect().IsValid() {
			errs = append(errs, fmt.Errorf("%s %q is nil", msg.ProtoReflect().Descriptor().Name(), name))
			continue
		}
		if got := cache.GetResourceName(msg); got != name {
			errs = append(errs, fmt.Errorf("%s %q is stored under the name %q", msg.ProtoReflect().Descriptor().Name(), got, name))
			continue
		}
		out[name] = msg
	}
	return errs
}
