package main

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// watchedServices are the services proxy p calls: all of them when watch covers the mesh (like an
// Envoy sidecar without a Sidecar-style scope), else changedService plus watch-1 others spread so
// that every service has about as many watchers.
func watchedServices(p, watch, services int) []int {
	if watch >= services {
		out := make([]int, services)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := []int{changedService}
	others := services - 1
	for j := range watch - 1 {
		// The others are 1 … services-1 (changedService is 0).
		out = append(out, 1+(p*(watch-1)+j)%others)
	}
	return out
}

// subscription is what one proxy asks for, by type URL, in the order a gRPC client learns the
// names: the API listener of each target, its route configuration, the clusters the route uses
// (v1 and v2; the all-endpoints cluster is not referenced by the route, so a gRPC client never
// asks for it) and their endpoints.
type subscription struct {
	names map[string][]string
}

var subscriptionTypes = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

func newSubscription(services []int) subscription {
	s := subscription{names: map[string][]string{}}
	for _, i := range services {
		h := hostname(i)
		s.names[resource.ListenerType] = append(s.names[resource.ListenerType], envoy.APIListenerName(h, servicePort))
		s.names[resource.RouteType] = append(s.names[resource.RouteType], envoy.RouteConfigName(h, servicePort))
		for _, subset := range []string{"v1", "v2"} {
			c := envoy.ClusterName(servicePort, subset, h)
			s.names[resource.ClusterType] = append(s.names[resource.ClusterType], c)
			// A cluster's EDS resource has the cluster's name (docs/xds.md).
			s.names[resource.EndpointType] = append(s.names[resource.EndpointType], c)
		}
	}
	return s
}

// changedRoute and changedCluster name what a push changes and how to recognise it.
var (
	changedRoute   = envoy.RouteConfigName(hostname(changedService), servicePort)
	changedCluster = envoy.ClusterName(servicePort, "v1", hostname(changedService))
)
