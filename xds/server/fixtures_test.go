package server

import (
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// mesh describes a small, consistent snapshot: every cluster has its endpoints, every route
// config sends everything to one cluster, every listener uses one route config.
type mesh struct {
	clusters       []string
	routes         map[string]string // route config → cluster
	envoyListeners map[string]string // listener → route config
	grpcListeners  map[string]string // listener → route config
	// endpointPort overrides the port of every endpoint (a port over 65535 fails validation).
	endpointPort uint32
}

func (m mesh) clone() mesh {
	m.clusters = slices.Clone(m.clusters)
	m.routes = maps.Clone(m.routes)
	m.envoyListeners = maps.Clone(m.envoyListeners)
	m.grpcListeners = maps.Clone(m.grpcListeners)
	return m
}

// baseMesh: cluster c1, route r1 → c1, Envoy listener l-envoy → r1, gRPC listener l-grpc → r1.
func baseMesh() mesh {
	return mesh{
		clusters:       []string{"c1"},
		routes:         map[string]string{"r1": "c1"},
		envoyListeners: map[string]string{"l-envoy": "r1"},
		grpcListeners:  map[string]string{"l-grpc": "r1"},
	}
}

func (m mesh) snapshot(t *testing.T) *envoy.Snapshot {
	t.Helper()
	snap := &envoy.Snapshot{
		Listeners: map[envoy.Flavour]map[string]*listenerv3.Listener{envoy.FlavourEnvoy: {}, envoy.FlavourGRPC: {}},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	port := m.endpointPort
	if port == 0 {
		port = 8080
	}
	for _, c := range m.clusters {
		snap.Clusters[c] = testCluster(c)
		snap.Endpoints[c] = testEndpoints(c, port)
	}
	for r, c := range m.routes {
		snap.Routes[r] = testRoute(r, c)
	}
	for l, r := range m.envoyListeners {
		snap.Listeners[envoy.FlavourEnvoy][l] = testEnvoyListener(t, l, r)
	}
	for l, r := range m.grpcListeners {
		snap.Listeners[envoy.FlavourGRPC][l] = testGRPCListener(t, l, r)
	}
	return snap
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func testCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
}

func testEndpoints(cluster string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       "10.0.0.1",
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
			}},
		}},
	}
}

func testRoute(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

func testHCM(t *testing.T, route string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: "test",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: route,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
}

func testEnvoyListener(t *testing.T, name, route string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, testHCM(t, route))},
			}},
		}},
	}
}

func testGRPCListener(t *testing.T, name, route string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, testHCM(t, route))},
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
