package envoy

import (
	"fmt"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// The Envoy sidecar's listeners: iptables sends outbound connections to virtualOutbound, which hands
// each to the bind_to_port=false listener for its original destination (a Service's ClusterIP:port)
// or passes it through; inbound connections go to virtualInbound.

const (
	tcpProxyFilterName    = "envoy.filters.network.tcp_proxy"
	originalDstFilterName = "envoy.filters.listener.original_dst"
)

// envoyServiceListener is the outbound listener of one port of a Service with a ClusterIP: HTTP and
// gRPC go through an HTTP connection manager that takes the port's routes over RDS, TCP through a
// TCP proxy that splits connections like the port's default route.
func envoyServiceListener(svc *ir.Service, port *ir.ServicePort, clusters *clusterSet, opts Options) (*listenerv3.Listener, error) {
	host := svc.Hostname()
	var filter *listenerv3.Filter
	if port.Protocol == ir.ProtocolTCP {
		tp, err := tcpServiceProxy(svc, port, clusters)
		if err != nil {
			return nil, err
		}
		filter = tcpProxyFilter(tp)
	} else {
		hcm := envoyHCM(statPrefix(svc, port.Port), directionOutbound, opts)
		hcm.HttpFilters = httpFilters(port)
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: RouteConfigName(host, port.Port),
		}}
		filter = hcmFilter(hcm)
	}
	name := EnvoyListenerName(svc.ClusterIP, port.Port)
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(svc.ClusterIP, port.Port),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{{Name: name, Filters: []*listenerv3.Filter{filter}}},
	}, nil
}

// tcpServiceProxy sends a TCP port's connections where its default (last) route sends requests;
// without routes, to every endpoint.
func tcpServiceProxy(svc *ir.Service, port *ir.ServicePort, clusters *clusterSet) (*tcpproxyv3.TcpProxy, error) {
	host := svc.Hostname()
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix(svc, port.Port)}
	if len(port.Routes) == 0 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterName(port.Port, ir.AllEndpoints, host)}
		return tp, nil
	}
	def := port.Routes[len(port.Routes)-1]
	wcs, err := destinations(host, port.Port, def.Destinations, clusters)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", def.Name, err)
	}
	if len(wcs) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: wcs[0].name}
		return tp, nil
	}
	ws := &tcpproxyv3.TcpProxy_WeightedCluster{}
	for _, wc := range wcs {
		ws.Clusters = append(ws.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: wc.name, Weight: wc.weight})
	}
	tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: ws}
	return tp, nil
}

// virtualOutbound captures outbound traffic; what no Service listener claims goes to its original
// destination unchanged.
func virtualOutbound(opts Options) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             VirtualOutboundListener,
		Address:          socketAddress("0.0.0.0", opts.OutboundPort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Name:    PassthroughCluster,
			Filters: []*listenerv3.Filter{tcpProxy(PassthroughCluster, PassthroughCluster)},
		}},
	}
}

// virtualInbound captures inbound traffic and forwards it to the application at its original
// destination. Connections to a port that some Service serves as HTTP or gRPC (and none as TCP) go
// through an HTTP connection manager, so they get L7 stats, logs and spans; the rest are proxied as
// TCP. Matching on the destination port needs no protocol sniffing, which would stall
// server-first protocols.
//
// Endpoints that take mTLS or are rate limited (pods, sorted by port then address) get chains of
// their own, matched on their port and pod IP (podChains), and each STRICT pod one more that
// refuses plain text on its other ports (strictPodChain): every sidecar gets the same listener, and
// only the pod with that IP matches the chain, so each pod enforces its mode, rules and limit on
// what it receives, from every caller.
func virtualInbound(l7Ports []uint32, pods []inboundEndpoint, opts Options) *listenerv3.Listener {
	chains := make([]*listenerv3.FilterChain, 0, len(l7Ports)+2*len(pods))
	for _, p := range l7Ports {
		hcm := envoyHCM(fmt.Sprintf("inbound_%d", p), directionInbound, opts)
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inboundRouteConfig(p)}
		chains = append(chains, &listenerv3.FilterChain{
			Name:             fmt.Sprintf("inbound|http|%d", p),
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(p)},
			Filters:          []*listenerv3.Filter{hcmFilter(hcm)},
		})
	}
	var tlsPorts []uint32
	var strictIPs []string
	parts := newPodChainParts(opts)
	for i := range pods {
		e := &pods[i]
		chains = append(chains, parts.podChains(e)...)
		if e.mode != "" {
			tlsPorts = append(tlsPorts, e.port)
		}
		if e.mode == ir.MTLSStrict {
			strictIPs = append(strictIPs, e.ip)
		}
	}
	slices.Sort(strictIPs)
	for _, ip := range slices.Compact(strictIPs) {
		chains = append(chains, strictPodChain(ip))
	}
	l := &listenerv3.Listener{
		Name:             VirtualInboundListener,
		Address:          socketAddress("0.0.0.0", opts.InboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters:  inboundListenerFilters(slices.Compact(tlsPorts)), // pods is sorted by port
		FilterChains:     chains,
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:    "inbound|tcp",
			Filters: []*listenerv3.Filter{tcpProxy("inbound_tcp", InboundPassthroughCluster)},
		},
	}
	if len(tlsPorts) > 0 {
		l.ListenerFiltersTimeout = duration(inboundFiltersTimeoutS * time.Second)
		l.ContinueOnListenerFiltersTimeout = true
	}
	return l
}

// inboundRouteConfig sends every request to the local application, without a timeout: the caller's
// proxy enforces the route's timeout.
func inboundRouteConfig(port uint32) *routev3.RouteConfiguration {
	name := fmt.Sprintf("inbound|%d", port)
	return &routev3.RouteConfiguration{
		Name:             name,
		ValidateClusters: wrapperspb.Bool(false),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  ir.DefaultRouteName,
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: InboundPassthroughCluster},
					Timeout:          duration(0),
				}},
			}},
		}},
	}
}

// inboundL7Ports lists, sorted, the endpoint ports that some Service serves as HTTP or gRPC and none
// as TCP (proxying HTTP as TCP works; the other way round does not).
func inboundL7Ports(in *ir.IR) []uint32 {
	l7, tcp := map[uint32]bool{}, map[uint32]bool{}
	for _, svc := range in.Services {
		for _, port := range svc.Ports {
			for _, ss := range port.Subsets {
				for _, ep := range ss.Endpoints {
					if port.Protocol == ir.ProtocolTCP {
						tcp[ep.Port] = true
					} else {
						l7[ep.Port] = true
					}
				}
			}
		}
	}
	var out []uint32
	for p := range l7 {
		if !tcp[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// envoyHCM is the HTTP connection manager of an Envoy listener, without its route specifier.
func envoyHCM(statPrefix, direction string, opts Options) *hcmv3.HttpConnectionManager {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:  statPrefix,
		CodecType:   hcmv3.HttpConnectionManager_AUTO,
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	if opts.AccessLog {
		hcm.AccessLog = accessLog(direction)
	}
	if opts.TracingCollector != "" {
		hcm.Tracing = tracing()
	}
	return hcm
}

func tcpProxy(statPrefix, cluster string) *listenerv3.Filter {
	return tcpProxyFilter(&tcpproxyv3.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
}

func tcpProxyFilter(tp *tcpproxyv3.TcpProxy) *listenerv3.Filter {
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(tp)}}
}
