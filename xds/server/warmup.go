package server

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// WarmupPathPrefix starts the path of the warm-up routes: gRPC methods no service defines.
const WarmupPathPrefix = "/sluice.xds.v1alpha1.Warmup/"

// Proxyless gRPC clients subscribe to a cluster only once a route names it, and grpc-go fails the
// calls it picks for a cluster whose balancer it is still building. So before a changed route
// sends traffic to a cluster it did not use before, the proxies get the route as it was plus
// warm-up routes to the new clusters, which no request matches; once they hold those clusters
// and their endpoints (or Options.WarmTimeout passes), the real route follows.

// warmRoutes returns, for each changed route configuration that now uses clusters its published
// version did not, that published version with warm-up routes to them, and the new clusters.
func (s *Server) warmRoutes(upsert map[string]types.Resource) (map[string]types.Resource, map[string]struct{}) {
	warm := map[string]types.Resource{}
	incoming := map[string]struct{}{}
	for name, msg := range upsert {
		old, ok := s.published[resource.RouteType][name]
		if !ok {
			continue // a proxy asking for a new route waits for all its clusters itself
		}
		before := routeClusters(old.msg.(*routev3.RouteConfiguration))
		var added []string
		for c := range routeClusters(msg.(*routev3.RouteConfiguration)) {
			if _, had := before[c]; !had {
				added = append(added, c)
			}
		}
		if len(added) == 0 {
			continue
		}
		slices.Sort(added)
		rc := proto.Clone(old.msg).(*routev3.RouteConfiguration)
		if len(rc.GetVirtualHosts()) == 0 {
			continue
		}
		vh := rc.VirtualHosts[0]
		routes := make([]*routev3.Route, 0, len(added)+len(vh.Routes))
		for _, c := range added {
			incoming[c] = struct{}{}
			routes = append(routes, &routev3.Route{
				Name:  "sluice-warmup",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: WarmupPathPrefix + c}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c},
				}},
			})
		}
		vh.Routes = append(routes, vh.Routes...)
		warm[name] = rc
	}
	return warm, incoming
}

// streamsNeedingWarmup lists the open streams that must take the incoming clusters through the
// warm-up routes before the real routes reach them.
func (s *Server) streamsNeedingWarmup(routes map[string]types.Resource, incoming map[string]struct{}) []*stream {
	names := make(map[string]struct{}, len(routes))
	for n := range routes {
		names[n] = struct{}{}
	}
	return slices.DeleteFunc(s.proxies.streamList(), func(st *stream) bool { return !st.needsWarmRoutes(names, incoming, s.caches) })
}

// waitRoutesWarm waits until none of pending still has to take route version target and the
// incoming clusters, or until Options.WarmTimeout.
func (s *Server) waitRoutesWarm(target uint64, pending []*stream, incoming map[string]struct{}) {
	s.waitFor(pending, func(st *stream) bool { return st.routesWarm(target, incoming, s.caches) },
		"Proxies did not take new clusters through warm-up routes in time; pushing routes anyway", "routeVersion", target)
}

// routeClusters lists the clusters a route configuration sends traffic (or mirrors) to.
func routeClusters(rc *routev3.RouteConfiguration) map[string]struct{} {
	out := map[string]struct{}{}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if a == nil {
				continue
			}
			if c := a.GetCluster(); c != "" {
				out[c] = struct{}{}
			}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				out[wc.GetName()] = struct{}{}
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				out[m.GetCluster()] = struct{}{}
			}
		}
	}
	return out
}
