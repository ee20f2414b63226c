package envoy

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	expr "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// grpc-go's resource validation lives in internal packages (internal/xds/xdsclient/xdsresource),
// and its public xDS packages need modules this repository's go.sum does not list, so this test
// restates the rules of grpc-go v1.85.0 that our resources touch and checks every resource a gRPC
// node can request: its listeners, the route configurations they name, the clusters those routes
// name, and their endpoints. A failure here means a proxyless gRPC client would NACK.

// grpcHTTPFilters are the HTTP filters grpc-go implements (client and server side), by config type.
var grpcHTTPFilters = map[string]bool{
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":   true,
	"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault": true,
	"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC":       true,
}

func TestGRPCCompatibility(t *testing.T) {
	for name, path := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			s := translateGolden(t, name, path)
			c := &grpcChecker{s: s, seenRoutes: map[string]bool{}, seenClusters: map[string]bool{}}
			for lname, l := range s.Listeners[FlavourGRPC] {
				c.listener(lname, l)
			}
			for _, err := range c.errs {
				t.Error(err)
			}
		})
	}
}

// TestGRPCCheckerCatches makes sure the checker is not vacuous: each break must be reported.
func TestGRPCCheckerCatches(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mutate     func(s *Snapshot)
	}{
		{"RANDOM in lb_policy", "lb_policy RANDOM is rejected", func(s *Snapshot) { s.Clusters[checkoutV1].LbPolicy = clusterv3.Cluster_RANDOM }},
		{"locality without weight", "locality without a weight", func(s *Snapshot) {
			s.Endpoints[checkoutV1].GetEndpoints()[0].LoadBalancingWeight = nil
		}},
		{"zero retries", "num_retries must be at least 1", func(s *Snapshot) {
			s.Routes[checkoutRoutes].GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRetryPolicy().NumRetries.Value = 0
		}},
		{"override of a filter grpc-go lacks", "is not implemented by grpc-go", func(s *Snapshot) {
			s.Routes[checkoutRoutes].GetVirtualHosts()[0].GetRoutes()[0].TypedPerFilterConfig = map[string]*anypb.Any{
				rateLimitFilterName: toAny(&hcmv3.HttpConnectionManager{}),
			}
		}},
		{"upper-case header", "lower-case names only", func(s *Snapshot) {
			s.Routes[checkoutRoutes].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetHeaders()[0].Name = "X-Canary"
		}},
		{"server route forwards", "needs non_forwarding_action", func(s *Snapshot) {
			l := s.Listeners[FlavourGRPC][ServerListenerName("10.244.1.5", 8080)]
			h, err := listenerHCMs(l)
			if err != nil || len(h) != 1 {
				t.Fatal(len(h), err)
			}
			h[0].hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].Action = &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: checkoutV1},
			}}
			l.GetFilterChains()[0].GetFilters()[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(h[0].hcm)}
		}},
		{"RBAC policy with a condition", "Policy.condition is present", func(s *Snapshot) {
			p := testRBACPolicy()
			p.Condition = &expr.Expr{}
			setServerRBAC(t, s, p)
		}},
		{"RBAC permission grpc-go lacks", "unsupported permission rule type", func(s *Snapshot) {
			p := testRBACPolicy()
			p.Permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_DestinationPortRange{}}}
			setServerRBAC(t, s, p)
		}},
		{"RBAC empty principal prefix", "empty prefix is not allowed", func(s *Snapshot) {
			p := testRBACPolicy()
			p.GetPrincipals()[0].GetAuthenticated().PrincipalName = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{}}
			setServerRBAC(t, s, p)
		}},
		{"RBAC on grpc- header", "is rejected", func(s *Snapshot) {
			p := testRBACPolicy()
			p.Permissions = []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
				Name: "grpc-timeout", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
			}}}}
			setServerRBAC(t, s, p)
		}},
		{"RBAC on a client listener", "not supported on the client side", func(s *Snapshot) {
			l := s.Listeners[FlavourGRPC][APIListenerName("checkout.shop.svc.cluster.local", 8080)]
			hcm := &hcmv3.HttpConnectionManager{}
			if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			hcm.HttpFilters = append([]*hcmv3.HttpFilter{rbacFilter(&ir.Authorization{})}, hcm.HttpFilters...)
			l.GetApiListener().ApiListener = toAny(hcm)
		}},
		{"listener filters on a server listener", "listener_filters are not supported", func(s *Snapshot) {
			l := s.Listeners[FlavourGRPC][ServerListenerName("10.244.1.5", 8080)]
			l.ListenerFilters = s.Listeners[FlavourEnvoy][VirtualInboundListener].GetListenerFilters()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSnapshot(t)
			tc.mutate(s)
			c := &grpcChecker{s: s, seenRoutes: map[string]bool{}, seenClusters: map[string]bool{}}
			for lname, l := range s.Listeners[FlavourGRPC] {
				c.listener(lname, l)
			}
			if err := errors.Join(c.errs...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func testRBACPolicy() *rbacconfigv3.Policy {
	return rbacPolicy(&ir.AuthorizationPolicy{Name: "p", Principals: []ir.StringMatch{{Exact: "spiffe://cluster.local/ns/shop/sa/web"}}})
}

// setServerRBAC puts an RBAC filter with policy p before the router of the server listener of
// validSnapshot.
func setServerRBAC(t *testing.T, s *Snapshot, p *rbacconfigv3.Policy) {
	t.Helper()
	l := s.Listeners[FlavourGRPC][ServerListenerName("10.244.1.5", 8080)]
	h, err := listenerHCMs(l)
	if err != nil || len(h) != 1 {
		t.Fatal(len(h), err)
	}
	cfg := &rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Policies: map[string]*rbacconfigv3.Policy{"p": p}}}
	h[0].hcm.HttpFilters = append([]*hcmv3.HttpFilter{{
		Name: rbacFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)},
	}}, h[0].hcm.HttpFilters...)
	l.GetFilterChains()[0].GetFilters()[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(h[0].hcm)}
}

type grpcChecker struct {
	s            *Snapshot
	seenRoutes   map[string]bool
	seenClusters map[string]bool
	errs         []error
}

func (c *grpcChecker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *grpcChecker) listener(name string, l *listenerv3.Listener) {
	if api := l.GetApiListener(); api != nil {
		c.hcm("listener "+name, api.GetApiListener(), false)
		return
	}
	// A server listener.
	if len(l.GetListenerFilters()) != 0 {
		c.fail("listener %s: listener_filters are not supported", name)
	}
	if l.GetUseOriginalDst().GetValue() {
		c.fail("listener %s: use_original_dst is not supported", name)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		c.fail("listener %s: no socket address", name)
		return
	}
	if want := ServerListenerName(sa.GetAddress(), sa.GetPortValue()); want != name {
		c.fail("listener %s: address %s:%d does not match the name a server on it requests (%s)", name, sa.GetAddress(), sa.GetPortValue(), want)
	}
	usable := 0
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if m.GetDestinationPort().GetValue() != 0 || len(m.GetServerNames()) != 0 || len(m.GetApplicationProtocols()) != 0 ||
			(m.GetTransportProtocol() != "" && m.GetTransportProtocol() != "raw_buffer") {
			continue // grpc-go drops such chains
		}
		usable++
		if m.GetSourceType() != listenerv3.FilterChainMatch_ANY && m.GetSourceType() != listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK && m.GetSourceType() != listenerv3.FilterChainMatch_EXTERNAL {
			c.fail("listener %s chain %s: unsupported source type", name, fc.GetName())
		}
		if ts := fc.GetTransportSocket(); ts != nil {
			c.tlsSocket(fmt.Sprintf("listener %s chain %s", name, fc.GetName()), ts, true)
		}
		c.networkFilters(fmt.Sprintf("listener %s chain %s", name, fc.GetName()), fc.GetFilters())
	}
	if usable > 1 {
		c.fail("listener %s: %d filter chains with the same (empty) match overlap", name, usable)
	}
	if usable == 0 && l.GetDefaultFilterChain() == nil {
		c.fail("listener %s: no usable filter chain", name)
	}
}

func (c *grpcChecker) networkFilters(where string, fs []*listenerv3.Filter) {
	names := map[string]bool{}
	hcms := 0
	for _, f := range fs {
		if f.GetName() == "" || names[f.GetName()] {
			c.fail("%s: filter name %q missing or repeated", where, f.GetName())
		}
		names[f.GetName()] = true
		tc := f.GetTypedConfig()
		if tc.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
			c.fail("%s: network filter %q of type %q is not supported", where, f.GetName(), tc.GetTypeUrl())
			continue
		}
		hcms++
		c.hcm(where, tc, true)
	}
	if hcms == 0 {
		c.fail("%s: no HTTP connection manager", where)
	}
}

func (c *grpcChecker) hcm(where string, a *anypb.Any, server bool) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(hcm); err != nil {
		c.fail("%s: %v", where, err)
		return
	}
	if hcm.GetXffNumTrustedHops() != 0 || len(hcm.GetOriginalIpDetectionExtensions()) != 0 {
		c.fail("%s: xff_num_trusted_hops / original_ip_detection_extensions must be unset", where)
	}
	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if rs.Rds.GetConfigSource().GetAds() == nil && (server || rs.Rds.GetConfigSource().GetSelf() == nil) {
			c.fail("%s: RDS config source must be ADS", where)
		}
		name := rs.Rds.GetRouteConfigName()
		if name == "" {
			c.fail("%s: empty route_config_name", where)
		} else if rc := c.s.Routes[name]; rc == nil {
			c.fail("%s: route configuration %q does not exist", where, name)
		} else if !c.seenRoutes[name] {
			c.seenRoutes[name] = true
			c.routeConfig("route configuration "+name, rc, server)
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		c.routeConfig(where+" inline route configuration", rs.RouteConfig, server)
	default:
		c.fail("%s: unsupported route specifier %T", where, rs)
	}
	fs := hcm.GetHttpFilters()
	if len(fs) == 0 {
		c.fail("%s: no HTTP filters", where)
	}
	names := map[string]bool{}
	for i, f := range fs {
		if f.GetName() == "" || names[f.GetName()] {
			c.fail("%s: HTTP filter name %q missing or repeated", where, f.GetName())
		}
		names[f.GetName()] = true
		typ := f.GetTypedConfig().GetTypeUrl()
		if !grpcHTTPFilters[typ] && !f.GetIsOptional() {
			c.fail("%s: HTTP filter %q (%s) is not implemented by grpc-go", where, f.GetName(), typ)
		}
		if typ == rbacTypeURL {
			c.rbac(fmt.Sprintf("%s HTTP filter %q", where, f.GetName()), f.GetTypedConfig(), server)
		}
		isRouter := typ == "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
		if isRouter != (i == len(fs)-1) {
			c.fail("%s: the router must be the last HTTP filter, and only the last", where)
		}
	}
}

func (c *grpcChecker) routeConfig(where string, rc *routev3.RouteConfiguration, server bool) {
	if rc.GetName() == "" {
		c.fail("%s: empty name", where)
	}
	if len(rc.GetClusterSpecifierPlugins()) != 0 {
		c.fail("%s: cluster specifier plugins are not expected", where)
	}
	for _, vh := range rc.GetVirtualHosts() {
		vw := fmt.Sprintf("%s virtual host %q", where, vh.GetName())
		if len(vh.GetDomains()) != 1 || vh.GetDomains()[0] != "*" {
			c.fail("%s: domains %v; want [*] so the dialled authority matches", vw, vh.GetDomains())
		}
		if len(vh.GetTypedPerFilterConfig()) != 0 {
			c.fail("%s: per-filter config is not expected", vw)
		}
		routes := vh.GetRoutes()
		if len(routes) == 0 {
			c.fail("%s: no routes", vw)
		}
		for _, r := range routes {
			c.route(fmt.Sprintf("%s route %q", vw, r.GetName()), r, server)
		}
		if last := routes[len(routes)-1].GetMatch(); last.GetPrefix() != "/" || len(last.GetHeaders()) != 0 {
			c.fail("%s: the last route must match every RPC", vw)
		}
	}
}

func (c *grpcChecker) route(where string, r *routev3.Route, server bool) {
	for name, cfg := range r.GetTypedPerFilterConfig() {
		// grpc-go NACKs an override for a filter it does not implement, unless it is optional.
		fc := &routev3.FilterConfig{}
		if cfg.MessageIs(fc) {
			if err := cfg.UnmarshalTo(fc); err != nil {
				c.fail("%s: filter override %q: %v", where, name, err)
				continue
			}
			if fc.GetIsOptional() {
				continue
			}
			cfg = fc.GetConfig()
		}
		if !grpcHTTPFilters[cfg.GetTypeUrl()] {
			c.fail("%s: filter override %q (%s) is not implemented by grpc-go", where, name, cfg.GetTypeUrl())
		}
	}
	m := r.GetMatch()
	if m == nil || m.GetPathSpecifier() == nil {
		c.fail("%s: no match or path specifier", where)
		return
	}
	if re := m.GetSafeRegex().GetRegex(); re != "" {
		c.regex(where, re)
	}
	for _, h := range m.GetHeaders() {
		switch hm := h.GetHeaderMatchSpecifier().(type) {
		case *routev3.HeaderMatcher_StringMatch:
			if hm.StringMatch == nil {
				c.fail("%s header %s: empty string matcher", where, h.GetName())
			} else if re := hm.StringMatch.GetSafeRegex().GetRegex(); re != "" {
				c.regex(where, re)
			}
		case *routev3.HeaderMatcher_PresentMatch:
		default:
			c.fail("%s header %s: matcher %T not expected", where, h.GetName(), hm)
		}
		if h.GetName() != "" && h.GetName() != toLowerASCII(h.GetName()) {
			c.fail("%s header %s: grpc-go matches lower-case names only", where, h.GetName())
		}
	}
	if server {
		if r.GetNonForwardingAction() == nil {
			c.fail("%s: a server route needs non_forwarding_action or RPCs fail", where)
		}
		return
	}
	a := r.GetRoute()
	if a == nil {
		c.fail("%s: client routes need a route action", where)
		return
	}
	var clusters []string
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		clusters = append(clusters, cs.Cluster)
	case *routev3.RouteAction_WeightedClusters:
		var total uint64
		for _, wc := range cs.WeightedClusters.GetClusters() {
			if w := wc.GetWeight().GetValue(); w > 0 {
				total += uint64(w)
				clusters = append(clusters, wc.GetName())
			}
		}
		if total == 0 || total > math.MaxUint32 {
			c.fail("%s: total weight %d out of range", where, total)
		}
	default:
		c.fail("%s: cluster specifier %T is ignored by grpc-go", where, cs)
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		if rp.GetNumRetries() != nil && rp.GetNumRetries().GetValue() < 1 {
			c.fail("%s: num_retries must be at least 1", where)
		}
		if b := rp.GetRetryBackOff(); b != nil && b.GetBaseInterval().AsDuration() <= 0 {
			c.fail("%s: retry base interval must be positive", where)
		}
	}
	for _, hp := range a.GetHashPolicy() {
		// grpc-go hashes headers and its channel ID, and ignores (with a warning) the others.
		if h := hp.GetHeader(); h != nil && h.GetHeaderName() != toLowerASCII(h.GetHeaderName()) {
			c.fail("%s: hash header %s: grpc-go matches lower-case names only", where, h.GetHeaderName())
		}
	}
	for _, name := range clusters {
		if !c.seenClusters[name] {
			c.seenClusters[name] = true
			c.cluster(name)
		}
	}
}

func (c *grpcChecker) regex(where, re string) {
	if _, err := regexp.Compile(re); err != nil {
		c.fail("%s: regex %q does not compile: %v", where, re, err)
	}
}

// grpcLBPolicies are the load_balancing_policy types grpc-go converts.
var grpcLBPolicies = map[string]bool{
	"type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin":                                        true,
	"type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash":                                            true,
	"type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest":                                    true,
	"type.googleapis.com/envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst":                                          true,
	"type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality":                                      true,
	"type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin": true,
}

func (c *grpcChecker) cluster(name string) {
	cl := c.s.ClustersOf(FlavourGRPC)[name]
	where := "cluster " + name
	if cl == nil {
		c.fail("%s: does not exist", where)
		return
	}
	switch cl.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
	case clusterv3.Cluster_RING_HASH:
		if cl.GetRingHashLbConfig().GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			c.fail("%s: ring hash needs XX_HASH", where)
		}
	case clusterv3.Cluster_LEAST_REQUEST:
		if cc := cl.GetLeastRequestLbConfig().GetChoiceCount(); cc != nil && cc.GetValue() < 2 {
			c.fail("%s: least request choice_count below 2", where)
		}
	default:
		c.fail("%s: lb_policy %v is rejected", where, cl.GetLbPolicy())
	}
	if lbp := cl.GetLoadBalancingPolicy(); lbp != nil {
		c.lbPolicy(where, lbp)
	}
	if len(cl.GetTransportSocketMatches()) != 0 {
		c.fail("%s: transport_socket_matches is rejected", where)
	}
	if ts := cl.GetTransportSocket(); ts != nil {
		c.tlsSocket(where, ts, false)
	}
	if cl.GetLrsServer() != nil && cl.GetLrsServer().GetSelf() == nil {
		c.fail("%s: lrs_server must be self", where)
	}
	if cl.GetType() != clusterv3.Cluster_EDS {
		c.fail("%s: type %v; gRPC routes should reach EDS clusters", where, cl.GetType())
		return
	}
	src := cl.GetEdsClusterConfig().GetEdsConfig()
	if src.GetAds() == nil && src.GetSelf() == nil {
		c.fail("%s: EDS config source must be ADS or self", where)
	}
	eds := edsServiceName(cl)
	if cla := c.s.Endpoints[eds]; cla == nil {
		c.fail("%s: endpoints %q do not exist", where, eds)
	} else {
		c.endpoints("endpoints "+eds, cla)
	}
}

// lbPolicy checks that grpc-go finds a policy it supports, and that the one it picks is valid.
func (c *grpcChecker) lbPolicy(where string, lbp *clusterv3.LoadBalancingPolicy) {
	for _, p := range lbp.GetPolicies() {
		tc := p.GetTypedExtensionConfig().GetTypedConfig()
		if !grpcLBPolicies[tc.GetTypeUrl()] {
			continue
		}
		if rh := (&ringhashv3.RingHash{}); tc.MessageIs(rh) {
			if err := tc.UnmarshalTo(rh); err != nil || rh.GetHashFunction() != ringhashv3.RingHash_XX_HASH {
				c.fail("%s: load_balancing_policy ring_hash needs XX_HASH", where)
			}
		}
		if lr := (&leastrequestv3.LeastRequest{}); tc.MessageIs(lr) {
			if err := tc.UnmarshalTo(lr); err != nil || (lr.GetChoiceCount() != nil && lr.GetChoiceCount().GetValue() < 2) {
				c.fail("%s: load_balancing_policy least_request choice_count below 2", where)
			}
		}
		return
	}
	c.fail("%s: no load_balancing_policy that grpc-go supports", where)
}

func (c *grpcChecker) endpoints(where string, cla *endpointv3.ClusterLoadAssignment) {
	seen := map[string]bool{}
	priorities := map[uint32]bool{}
	for _, loc := range cla.GetEndpoints() {
		if loc.GetLocality() == nil {
			c.fail("%s: locality without an ID", where)
		}
		if loc.GetLoadBalancingWeight().GetValue() == 0 {
			c.fail("%s: locality without a weight is ignored", where)
		}
		priorities[loc.GetPriority()] = true
		for _, ep := range loc.GetLbEndpoints() {
			if w := ep.GetLoadBalancingWeight(); w != nil && w.GetValue() == 0 {
				c.fail("%s: endpoint with zero weight", where)
			}
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			addr := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
			if seen[addr] {
				c.fail("%s: address %s listed twice", where, addr)
			}
			seen[addr] = true
		}
	}
	for p := range uint32(len(priorities)) {
		if !priorities[p] {
			c.fail("%s: priority %d missing", where, p)
		}
	}
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// tlsSocket restates grpc-go's security config parsing (unmarshal_lds.go, unmarshal_cds.go,
// securityConfigFromCommonTLSContextUsingNewFields): the TLS transport socket by name, the
// certificate provider instances of the bootstrap, and none of the fields it rejects.
func (c *grpcChecker) tlsSocket(where string, ts *corev3.TransportSocket, server bool) {
	if ts.GetName() != "envoy.transport_sockets.tls" {
		c.fail("%s: transport_socket field has unexpected name: %s", where, ts.GetName())
	}
	var common *tlsv3.CommonTlsContext
	if server {
		d := &tlsv3.DownstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(d); err != nil {
			c.fail("%s: not a DownstreamTlsContext: %v", where, err)
			return
		}
		if d.GetRequireSni().GetValue() || d.GetOcspStaplePolicy() != tlsv3.DownstreamTlsContext_LENIENT_STAPLING {
			c.fail("%s: require_sni or ocsp_staple_policy set", where)
		}
		common = d.GetCommonTlsContext()
		if d.GetRequireClientCertificate().GetValue() && common.GetValidationContext().GetCaCertificateProviderInstance() == nil {
			c.fail("%s: require_client_certificate without a root certificate provider", where)
		}
	} else {
		u := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
			c.fail("%s: not an UpstreamTlsContext: %v", where, err)
			return
		}
		common = u.GetCommonTlsContext()
	}
	if common == nil || common.GetTlsParams() != nil || common.GetCustomHandshaker() != nil ||
		len(common.GetTlsCertificates()) != 0 || len(common.GetTlsCertificateSdsSecretConfigs()) != 0 {
		c.fail("%s: CommonTlsContext missing or with fields grpc-go rejects", where)
		return
	}
	if common.GetTlsCertificateProviderInstance().GetInstanceName() != CertificateProviderInstance {
		c.fail("%s: identity certificate provider instance is not %q", where, CertificateProviderInstance)
	}
	vc := common.GetValidationContext()
	if vc.GetCaCertificateProviderInstance().GetInstanceName() != CertificateProviderInstance {
		c.fail("%s: root certificate provider instance is not %q", where, CertificateProviderInstance)
	}
	if len(vc.GetVerifyCertificateSpki()) != 0 || len(vc.GetVerifyCertificateHash()) != 0 || vc.GetCrl() != nil || vc.GetCustomValidatorConfig() != nil {
		c.fail("%s: validation context fields grpc-go rejects", where)
	}
	if server && len(vc.GetMatchSubjectAltNames()) != 0 { //nolint:staticcheck // grpc-go reads the deprecated field
		c.fail("%s: match_subject_alt_names field in validation context is not supported on the server", where)
	}
	if len(vc.GetMatchTypedSubjectAltNames()) != 0 {
		c.fail("%s: grpc-go ignores match_typed_subject_alt_names", where)
	}
}

const rbacTypeURL = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"

// rbac restates grpc-go's RBAC filter (internal/xds/httpfilter/rbac, internal/xds/rbac): a server
// filter only (it is no ClientFilterBuilder, so a client listener with it is NACKed); policies
// without condition or checked_condition; only the permission and principal types its engine
// converts; header matchers neither on ":scheme" nor on "grpc-*"; string matchers with a pattern
// (an empty prefix or suffix is rejected). Action LOG is accepted but enforces nothing, so our
// resources must use ALLOW (or DENY).
func (c *grpcChecker) rbac(where string, a *anypb.Any, server bool) {
	if !server {
		c.fail("%s: the RBAC filter is not supported on the client side", where)
	}
	cfg := &rbacv3.RBAC{}
	if err := a.UnmarshalTo(cfg); err != nil {
		c.fail("%s: %v", where, err)
		return
	}
	rules := cfg.GetRules()
	if rules == nil {
		c.fail("%s: no rules: grpc-go enforces nothing", where)
		return
	}
	if rules.GetAction() != rbacconfigv3.RBAC_ALLOW && rules.GetAction() != rbacconfigv3.RBAC_DENY {
		c.fail("%s: action %v enforces nothing", where, rules.GetAction())
	}
	if rules.GetAuditLoggingOptions() != nil {
		c.fail("%s: audit logging options are not expected", where)
	}
	for name, p := range rules.GetPolicies() {
		pw := fmt.Sprintf("%s policy %q", where, name)
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
			c.fail("%s: Policy.condition is present", pw)
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			c.fail("%s: a policy needs permissions and principals", pw)
		}
		for _, perm := range p.GetPermissions() {
			c.rbacPermission(pw, perm)
		}
		for _, id := range p.GetPrincipals() {
			c.rbacPrincipal(pw, id)
		}
	}
}

func (c *grpcChecker) rbacPermission(where string, p *rbacconfigv3.Permission) {
	switch r := p.GetRule().(type) {
	case *rbacconfigv3.Permission_AndRules:
		for _, q := range r.AndRules.GetRules() {
			c.rbacPermission(where, q)
		}
	case *rbacconfigv3.Permission_OrRules:
		for _, q := range r.OrRules.GetRules() {
			c.rbacPermission(where, q)
		}
	case *rbacconfigv3.Permission_NotRule:
		c.rbacPermission(where, r.NotRule)
	case *rbacconfigv3.Permission_Any:
	case *rbacconfigv3.Permission_Header:
		c.rbacHeader(where, r.Header)
	case *rbacconfigv3.Permission_UrlPath:
		c.rbacString(where+" url_path", r.UrlPath.GetPath())
	case *rbacconfigv3.Permission_DestinationIp, *rbacconfigv3.Permission_DestinationPort:
	default:
		c.fail("%s: unsupported permission rule type: %T", where, r)
	}
}

func (c *grpcChecker) rbacPrincipal(where string, p *rbacconfigv3.Principal) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_AndIds:
		for _, q := range id.AndIds.GetIds() {
			c.rbacPrincipal(where, q)
		}
	case *rbacconfigv3.Principal_OrIds:
		for _, q := range id.OrIds.GetIds() {
			c.rbacPrincipal(where, q)
		}
	case *rbacconfigv3.Principal_NotId:
		c.rbacPrincipal(where, id.NotId)
	case *rbacconfigv3.Principal_Any:
	case *rbacconfigv3.Principal_Authenticated_:
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			c.rbacString(where+" principal_name", pn)
		}
	case *rbacconfigv3.Principal_Header:
		c.rbacHeader(where, id.Header)
	case *rbacconfigv3.Principal_UrlPath:
		c.rbacString(where+" url_path", id.UrlPath.GetPath())
	case *rbacconfigv3.Principal_DirectRemoteIp, *rbacconfigv3.Principal_SourceIp, *rbacconfigv3.Principal_RemoteIp:
	default:
		c.fail("%s: unsupported principal identifier type: %T", where, id)
	}
}

func (c *grpcChecker) rbacHeader(where string, h *routev3.HeaderMatcher) {
	name := toLowerASCII(h.GetName())
	if name == ":scheme" || strings.HasPrefix(name, "grpc-") {
		c.fail("%s: header matcher for %q is rejected", where, h.GetName())
	}
	switch m := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		c.rbacString(where+" header "+name, m.StringMatch)
	case *routev3.HeaderMatcher_PresentMatch:
	default:
		c.fail("%s header %s: matcher %T not expected", where, name, m)
	}
}

// rbacString restates internal/xds/matcher.StringMatcherFromProto.
func (c *grpcChecker) rbacString(where string, m *matcherv3.StringMatcher) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
	case *matcherv3.StringMatcher_Prefix:
		if p.Prefix == "" {
			c.fail("%s: empty prefix is not allowed in StringMatcher", where)
		}
	case *matcherv3.StringMatcher_Suffix:
		if p.Suffix == "" {
			c.fail("%s: empty suffix is not allowed in StringMatcher", where)
		}
	case *matcherv3.StringMatcher_Contains:
		if p.Contains == "" {
			c.fail("%s: empty contains is not allowed in StringMatcher", where)
		}
	case *matcherv3.StringMatcher_SafeRegex:
		c.regex(where, p.SafeRegex.GetRegex())
	default:
		c.fail("%s: unrecognized string matcher %v", where, m)
	}
}
