package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// The proxyless gRPC flavour's listeners, written to what grpc-go accepts (unmarshal_lds.go,
// filter_chain.go): HTTP filters that it implements (only the router here), RDS over ADS, no
// listener filters and no use_original_dst on server listeners.

// grpcAPIListener is what a gRPC client gets for xds:///<hostname>:<port>: an api_listener whose
// connection manager names the port's RouteConfiguration.
func grpcAPIListener(svc *ir.Service, port *ir.ServicePort) *listenerv3.Listener {
	host := svc.Hostname()
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix(svc, port.Port),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: RouteConfigName(host, port.Port),
		}},
		HttpFilters: httpFilters(port),
	}
	return &listenerv3.Listener{
		Name:        APIListenerName(host, port.Port),
		ApiListener: &listenerv3.ApiListener{ApiListener: toAny(hcm)},
	}
}

// grpcServerListener is what an xDS-enabled gRPC server listening on ip:port gets. grpc-go requires
// the address to equal the one it listens on, and a route whose action is non_forwarding_action
// for each RPC it should serve; the route config is inline so there is nothing else to fetch.
// The listener does not depend on the Service, so two Services sharing an endpoint produce the same
// resource. A STRICT endpoint's filter chain takes mutual TLS only (grpcServerTLS); for the others
// it has no transport socket, and the server uses its fallback (plain-text) credentials. With
// authz (a STRICT endpoint whose workload has authorization rules), grpc-go's RBAC filter runs
// before the router.
func grpcServerListener(ip string, port uint32, mode ir.MTLSMode, authz *ir.Authorization) *listenerv3.Listener {
	filters := []*hcmv3.HttpFilter{routerFilter()}
	if authz != nil && grpcServerTakesTLS(mode) {
		filters = []*hcmv3.HttpFilter{rbacFilter(authz), routerFilter()}
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "grpc_server",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "grpc-server",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "grpc-server",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:   ir.DefaultRouteName,
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	fc := &listenerv3.FilterChain{Name: "grpc-server", Filters: []*listenerv3.Filter{hcmFilter(hcm)}}
	if grpcServerTakesTLS(mode) {
		fc.Name = "grpc-server-mtls"
		fc.TransportSocket = grpcServerTLS()
	}
	return &listenerv3.Listener{
		Name:             ServerListenerName(ip, port),
		Address:          socketAddress(ip, port),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains:     []*listenerv3.FilterChain{fc},
	}
}
