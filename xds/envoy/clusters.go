package envoy

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	randomv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Load balancer names in ir.ClusterPolicy.
const (
	lbRoundRobin   = "RoundRobin"
	lbLeastRequest = "LeastRequest"
	lbRandom       = "Random"
	lbRingHash     = "RingHash"
	lbMaglev       = "Maglev"
)

// httpProtocolOptionsKey is the typed_extension_protocol_options key for upstream HTTP options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// portClusters builds one EDS cluster per subset of a Service port. The clusters are shared by both
// flavours, so they stay within what grpc-go accepts (see unmarshal_cds.go): type EDS from ADS, a
// load balancer grpc-go knows, no transport_socket_matches.
func portClusters(svc *ir.Service, port *ir.ServicePort, opts Options) ([]*clusterv3.Cluster, error) {
	host := svc.Hostname()
	out := make([]*clusterv3.Cluster, 0, len(port.Subsets))
	for _, ss := range port.Subsets {
		name := ClusterName(port.Port, ss.Name, host)
		c := &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
				EdsConfig:   adsConfigSource(),
				ServiceName: name,
			},
			ConnectTimeout: duration(opts.ConnectTimeout),
		}
		if err := setLoadBalancer(c, port.Policy); err != nil {
			return nil, err
		}
		if p := port.Policy; p != nil {
			c.CircuitBreakers = circuitBreakers(p)
			c.OutlierDetection = outlierDetection(p.OutlierDetection)
		}
		// Envoy would speak HTTP/1.1 to every upstream. gRPC needs HTTP/2; plain HTTP keeps what the
		// client spoke, as it would without the mesh. grpc-go ignores protocol options.
		switch port.Protocol {
		case ir.ProtocolGRPC:
			c.TypedExtensionProtocolOptions = http2ProtocolOptions()
		case ir.ProtocolHTTP:
			c.TypedExtensionProtocolOptions = downstreamProtocolOptions()
		}
		out = append(out, c)
	}
	return out, nil
}

// setLoadBalancer maps the IR's balancer onto the cluster. grpc-go accepts only ROUND_ROBIN,
// RING_HASH and LEAST_REQUEST in lb_policy and NACKs the rest, so Random and Maglev go in
// load_balancing_policy instead: both clients take the first policy in the list they support, so
// Envoy gets random/maglev and grpc-go falls back to round_robin/ring_hash.
func setLoadBalancer(c *clusterv3.Cluster, p *ir.ClusterPolicy) error {
	lb := ""
	if p != nil {
		lb = p.LoadBalancer
	}
	switch lb {
	case "", lbRoundRobin:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case lbLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case lbRingHash:
		// Default hash function is XX_HASH, the only one grpc-go supports.
		c.LbPolicy = clusterv3.Cluster_RING_HASH
	case lbRandom:
		c.LoadBalancingPolicy = lbPolicies(
			lbPolicy("envoy.load_balancing_policies.random", &randomv3.Random{}),
			lbPolicy("envoy.load_balancing_policies.round_robin", &roundrobinv3.RoundRobin{}),
		)
	case lbMaglev:
		c.LoadBalancingPolicy = lbPolicies(
			lbPolicy("envoy.load_balancing_policies.maglev", &maglevv3.Maglev{}),
			lbPolicy("envoy.load_balancing_policies.ring_hash", &ringhashv3.RingHash{HashFunction: ringhashv3.RingHash_XX_HASH}),
		)
	default:
		return fmt.Errorf("unknown load balancer %q (want %s, %s, %s, %s or %s)", lb, lbRoundRobin, lbLeastRequest, lbRandom, lbRingHash, lbMaglev)
	}
	return nil
}

func lbPolicies(ps ...*clusterv3.LoadBalancingPolicy_Policy) *clusterv3.LoadBalancingPolicy {
	return &clusterv3.LoadBalancingPolicy{Policies: ps}
}

func lbPolicy(name string, cfg proto.Message) *clusterv3.LoadBalancingPolicy_Policy {
	return &clusterv3.LoadBalancingPolicy_Policy{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: toAny(cfg)}}
}

// downstreamProtocolOptions make the upstream connection speak what the client spoke, so HTTP/2
// (gRPC or h2c) through an HTTP connection manager is not downgraded to HTTP/1.1.
func downstreamProtocolOptions() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}},
	})}
}

func http2ProtocolOptions() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})}
}

// originalDstCluster forwards to the connection's original destination. Only Envoy sidecars use
// these; a gRPC client never asks for them (grpc-go would NACK ORIGINAL_DST).
func originalDstCluster(name string, opts Options) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       duration(opts.ConnectTimeout),
	}
}

// hostCluster reaches one host:port, resolving it with DNS unless it is an IP. It speaks HTTP/2
// when http2 is set (gRPC services such as an OTLP collector).
func hostCluster(name, host string, port uint32, http2 bool, connectTimeout time.Duration) *clusterv3.Cluster {
	typ := clusterv3.Cluster_STRICT_DNS
	if isIP(host) {
		typ = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       duration(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
				}},
			}},
		},
	}
	if http2 {
		c.TypedExtensionProtocolOptions = http2ProtocolOptions()
	}
	return c
}

// circuitBreakers holds the DEFAULT-priority thresholds and the retry budget. grpc-go reads
// max_requests of the DEFAULT thresholds only.
func circuitBreakers(p *ir.ClusterPolicy) *clusterv3.CircuitBreakers {
	if p.CircuitBreaker == nil && p.RetryBudget == nil {
		return nil
	}
	t := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
	if cb := p.CircuitBreaker; cb != nil {
		t.MaxConnections = uint32Value(cb.MaxConnections)
		t.MaxPendingRequests = uint32Value(cb.MaxPendingRequests)
		t.MaxRequests = uint32Value(cb.MaxRequests)
		if cb.MaxRetries != nil {
			t.MaxRetries = wrapperspb.UInt32(*cb.MaxRetries)
		}
	}
	if b := p.RetryBudget; b != nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: b.Percent},
			MinRetryConcurrency: wrapperspb.UInt32(b.MinConcurrency),
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

func uint32Value(v uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return nil
	}
	return wrapperspb.UInt32(v)
}

// outlierDetection ejects by the rules the IR asks for and by no other: Envoy's defaults would also
// eject on 5 consecutive 5xx and by success rate, and grpc-go's (gRFC A50) by success rate, unless
// their enforcement is set to 0. grpc-go does not implement consecutive errors; it applies the
// failure percentage rule.
func outlierDetection(o *ir.OutlierDetection) *clusterv3.OutlierDetection {
	if o == nil {
		return nil
	}
	zero, all := wrapperspb.UInt32(0), wrapperspb.UInt32(100)
	od := &clusterv3.OutlierDetection{
		Interval:                           duration(o.Interval),
		BaseEjectionTime:                   duration(o.BaseEjectionTime),
		MaxEjectionPercent:                 wrapperspb.UInt32(o.MaxEjectionPercent),
		EnforcingConsecutive_5Xx:           zero,
		EnforcingConsecutiveGatewayFailure: zero,
		EnforcingSuccessRate:               zero,
	}
	if o.Consecutive5xx > 0 {
		od.Consecutive_5Xx = wrapperspb.UInt32(o.Consecutive5xx)
		od.EnforcingConsecutive_5Xx = all
	}
	if fp := o.FailurePercentage; fp != nil {
		od.FailurePercentageThreshold = wrapperspb.UInt32(fp.Threshold)
		od.EnforcingFailurePercentage = all
		od.FailurePercentageMinimumHosts = wrapperspb.UInt32(fp.MinimumHosts)
		od.FailurePercentageRequestVolume = wrapperspb.UInt32(fp.RequestVolume)
	}
	return od
}
