package envoy

import (
	"fmt"
	"net"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	directresponsev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/direct_response/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// The per-pod filter chains of virtualInbound. Every sidecar gets the same listener; a chain
// matched on a pod IP (prefix_ranges /32 or /128) is used only by the sidecar of that pod, since
// its inbound connections are the only ones with that original destination. Envoy picks the chain
// by destination port, then destination IP, then transport protocol, each time the most specific
// match, without going back: a connection to a pod IP and port that have chains of their own never
// reaches the port-wide chains or the listener's default chain.

const (
	tlsInspectorName       = "envoy.filters.listener.tls_inspector"
	directResponseName     = "envoy.filters.network.direct_response"
	transportProtocolTLS   = "tls"
	inboundFiltersTimeoutS = 1
)

// inboundEndpoint is an endpoint (pod IP and target port) whose sidecar needs chains of its own:
// because it takes mTLS (mode STRICT or PERMISSIVE) or because its port is rate limited.
type inboundEndpoint struct {
	ip   string
	port uint32
	l7   bool // an HTTP or gRPC port (inboundL7Ports), else TCP
	// mode is STRICT or PERMISSIVE, or "" when only a rate limit applies.
	mode        ir.MTLSMode
	trustDomain string
	authz       *ir.Authorization
	authzKey    string // authzKey(authz), for comparing two lists
	limit       *ir.RateLimit
}

func (e *inboundEndpoint) equal(o *inboundEndpoint) bool {
	return e.ip == o.ip && e.port == o.port && e.l7 == o.l7 && e.mode == o.mode && e.trustDomain == o.trustDomain &&
		e.authzKey == o.authzKey && (e.limit == nil) == (o.limit == nil) && (e.limit == nil || *e.limit == *o.limit)
}

// inboundEndpoints lists, sorted by port then address, the endpoints that need chains of their own
// (l7 is inboundL7Ports). Every endpoint of a STRICT or PERMISSIVE pod counts, ready or not: a pod
// that is not ready still refuses plain text. A rate limit is enforced by ready endpoints of L7
// ports; an endpoint that two rate-limited Services share gets the limit of the first in IR order.
// Two Services that share an endpoint agree on its mode and authorization (both are the pod's).
func inboundEndpoints(in *ir.IR, l7 []uint32) ([]inboundEndpoint, error) {
	type key struct {
		ip   string
		port uint32
	}
	byKey := map[key]*inboundEndpoint{}
	var keys []key
	for _, svc := range in.Services {
		for _, port := range svc.Ports {
			for _, ss := range port.Subsets {
				if ss.Name != ir.AllEndpoints {
					continue
				}
				for _, ep := range ss.Endpoints {
					mtls := ep.MTLS == ir.MTLSStrict || ep.MTLS == ir.MTLSPermissive
					isL7 := slices.Contains(l7, ep.Port)
					limited := port.RateLimit != nil && port.Protocol != ir.ProtocolTCP && ep.Ready && isL7
					if !mtls && !limited {
						continue
					}
					k := key{ep.Address, ep.Port}
					e := byKey[k]
					if e == nil {
						e = &inboundEndpoint{ip: ep.Address, port: ep.Port, l7: isL7}
						byKey[k] = e
						keys = append(keys, k)
					}
					if mtls && e.mode == "" {
						td := trustDomainOf(ep.Identity)
						if td == "" {
							return nil, fmt.Errorf("service %s/%s port %d%s: endpoint %s:%d is %s but has no SPIFFE identity (%q)",
								svc.Namespace, svc.Name, port.Port, sources(port.Sources), ep.Address, ep.Port, ep.MTLS, ep.Identity)
						}
						e.mode, e.trustDomain, e.authz, e.authzKey = ep.MTLS, td, ep.Authorization, authzKey(ep.Authorization)
					}
					if limited && e.limit == nil {
						e.limit = port.RateLimit
					}
				}
			}
		}
	}
	out := make([]inboundEndpoint, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	slices.SortFunc(out, func(a, b inboundEndpoint) int {
		if a.port != b.port {
			return int(a.port) - int(b.port)
		}
		return strings.Compare(a.ip, b.ip)
	})
	return out, nil
}

// podChains are the chains of one endpoint:
//   - with mTLS, "inbound|<port>|<ip>|tls" (transport_protocol tls) terminates TLS and requires a
//     client certificate from the trust domain's bundle; then "inbound|<port>|<ip>|raw_buffer"
//     under PERMISSIVE serves the same filters in plain text, and
//     "inbound|<port>|<ip>|plaintext-refused" under STRICT closes the connection. Both are matched
//     without a transport protocol, so whatever the TLS inspector does not call tls lands there;
//   - with only a rate limit, "inbound|http|<port>|<ip>" as before mTLS.
func (pc *podChainParts) podChains(e *inboundEndpoint) []*listenerv3.FilterChain {
	match := func(transport string) *listenerv3.FilterChainMatch {
		return &listenerv3.FilterChainMatch{
			DestinationPort:   wrapperspb.UInt32(e.port),
			PrefixRanges:      []*corev3.CidrRange{hostRange(e.ip)},
			TransportProtocol: transport,
		}
	}
	if e.mode == "" {
		return []*listenerv3.FilterChain{{
			Name:             fmt.Sprintf("inbound|http|%d|%s", e.port, e.ip),
			FilterChainMatch: match(""),
			Filters:          pc.filters(e),
		}}
	}
	var alpn []string
	if e.l7 {
		alpn = alpnHTTP
	}
	name := fmt.Sprintf("inbound|%d|%s|", e.port, e.ip)
	tls := &listenerv3.FilterChain{
		Name:             name + "tls",
		FilterChainMatch: match(transportProtocolTLS),
		Filters:          pc.filters(e),
		TransportSocket:  pc.serverTLS(e.trustDomain, alpn),
	}
	if e.mode == ir.MTLSPermissive {
		return []*listenerv3.FilterChain{tls, {Name: name + "raw_buffer", FilterChainMatch: match(""), Filters: pc.filters(e)}}
	}
	return []*listenerv3.FilterChain{tls, refusePlaintext(name+"plaintext-refused", match(""))}
}

// strictPodChain refuses the connections to a STRICT pod's ports that have no chain of their own
// (ports no Service of the mesh routes to it): matched on the pod IP alone, it is less specific
// than every chain with a destination port. A port that is another pod's HTTP or gRPC port has a
// port-wide chain, which Envoy prefers; see docs/xds.md.
func strictPodChain(ip string) *listenerv3.FilterChain {
	return refusePlaintext(fmt.Sprintf("inbound|%s|plaintext-refused", ip), &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{hostRange(ip)}})
}

// refusePlaintext is a chain that closes every connection at once (a direct response of nothing),
// before any byte reaches the application.
func refusePlaintext(name string, match *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		Filters: []*listenerv3.Filter{{
			Name:       directResponseName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&directresponsev3.Config{})},
		}},
	}
}

// podChainParts builds the chains of the endpoints of one virtualInbound. Pods of one port with
// the same rules and limit share their packed filters and TLS context (the same messages): a
// thousand chains hold a handful of distinct configs, which are built and marshalled once.
type podChainParts struct {
	opts          Options
	filterMemo    map[filtersKey][]*listenerv3.Filter
	serverTLSMemo map[string]*corev3.TransportSocket
}

type filtersKey struct {
	l7      bool
	port    uint32
	authz   string
	limited bool
	limit   ir.RateLimit
}

func newPodChainParts(opts Options) *podChainParts {
	return &podChainParts{opts: opts, filterMemo: map[filtersKey][]*listenerv3.Filter{}, serverTLSMemo: map[string]*corev3.TransportSocket{}}
}

func (pc *podChainParts) filters(e *inboundEndpoint) []*listenerv3.Filter {
	k := filtersKey{l7: e.l7, port: e.port, authz: e.authzKey, limited: e.limit != nil}
	if e.limit != nil {
		k.limit = *e.limit
	}
	if f, ok := pc.filterMemo[k]; ok {
		return f
	}
	f := podFilters(e, pc.opts)
	pc.filterMemo[k] = f
	return f
}

func (pc *podChainParts) serverTLS(trustDomain string, alpn []string) *corev3.TransportSocket {
	k := fmt.Sprint(trustDomain, alpn)
	if ts, ok := pc.serverTLSMemo[k]; ok {
		return ts
	}
	ts := envoyServerTLS(trustDomain, alpn)
	pc.serverTLSMemo[k] = ts
	return ts
}

// podFilters are the network filters behind an endpoint's mTLS chains: an HTTP connection manager
// for L7 ports, a TCP proxy (after the network RBAC filter when the pod has rules) for the others.
func podFilters(e *inboundEndpoint, opts Options) []*listenerv3.Filter {
	if e.l7 {
		return []*listenerv3.Filter{hcmFilter(inboundHCM(e, opts))}
	}
	prefix := fmt.Sprintf("inbound_%d", e.port)
	pass := tcpProxy(prefix, InboundPassthroughCluster)
	if e.authz == nil {
		return []*listenerv3.Filter{pass}
	}
	return []*listenerv3.Filter{networkRBACFilter(prefix+"_rbac", e.authz), pass}
}

// inboundHCM is the connection manager of an endpoint's own chains: the authorization rules (with
// path normalisation, see normalisePaths), then the rate limit, then the router to the
// application.
func inboundHCM(e *inboundEndpoint, opts Options) *hcmv3.HttpConnectionManager {
	prefix := fmt.Sprintf("inbound_%d", e.port)
	hcm := envoyHCM(prefix, directionInbound, opts)
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inboundRouteConfig(e.port)}
	var filters []*hcmv3.HttpFilter
	if e.authz != nil {
		normalisePaths(hcm)
		filters = append(filters, envoyRBACFilter(e.authz))
	}
	if e.limit != nil {
		filters = append(filters, rateLimitFilter(prefix+"_ratelimit", e.limit))
	}
	filters = append(filters, routerFilter())
	hcm.HttpFilters = filters
	return hcm
}

// inboundListenerFilters are virtualInbound's listener filters: original_dst, and the TLS inspector
// on the ports that have mTLS chains (tlsPorts, sorted). The inspector waits for the client's first
// bytes; a server-first protocol on such a port waits inboundFiltersTimeoutS before its chain is
// chosen as plain text. Other ports are not inspected.
func inboundListenerFilters(tlsPorts []uint32) []*listenerv3.ListenerFilter {
	filters := []*listenerv3.ListenerFilter{{
		Name:       originalDstFilterName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&originaldstv3.OriginalDst{})},
	}}
	if len(tlsPorts) == 0 {
		return filters
	}
	var onPorts []*listenerv3.ListenerFilterChainMatchPredicate
	for _, p := range tlsPorts {
		onPorts = append(onPorts, &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
			DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1},
		}})
	}
	inspected := onPorts[0]
	if len(onPorts) > 1 {
		inspected = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
			OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: onPorts},
		}}
	}
	return append(filters, &listenerv3.ListenerFilter{
		Name:       tlsInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&tlsinspectorv3.TlsInspector{})},
		FilterDisabled: &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{
			NotMatch: inspected,
		}},
	})
}

// hostRange is the CIDR range of one address.
func hostRange(ip string) *corev3.CidrRange {
	prefixLen := uint32(32)
	if a := net.ParseIP(ip); a != nil && a.To4() == nil {
		prefixLen = 128
	}
	return &corev3.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(prefixLen)}
}
