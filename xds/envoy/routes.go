package envoy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// idempotentMethods are the methods retried unless a policy allows retrying POST and PATCH too.
const idempotentMethods = "^(GET|HEAD|OPTIONS|PUT|DELETE|TRACE)$"

// defaultRetryOn is used when the IR asks for retries without saying on what: HTTP 5xx and
// connection failures for Envoy, and gRPC UNAVAILABLE, the only one of them grpc-go understands.
const defaultRetryOn = "5xx,connect-failure,refused-stream,unavailable"

// portRouteConfig builds the RouteConfiguration of an HTTP or GRPC Service port, shared by Envoy
// (through RDS from its outbound listener) and gRPC clients (through RDS from the API listener).
// One virtual host with domains ["*"]: it matches the authority a gRPC client dials
// (<hostname>:<port>) and whatever Host header an Envoy client sends to the ClusterIP.
func portRouteConfig(svc *ir.Service, port *ir.ServicePort, clusters *clusterSet) (*routev3.RouteConfiguration, error) {
	host := svc.Hostname()
	name := RouteConfigName(host, port.Port)
	routes := make([]*routev3.Route, 0, len(port.Routes))
	for i := range port.Routes {
		r, err := buildRoute(host, port, &port.Routes[i], clusters)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", port.Routes[i].Name, err)
		}
		routes = append(routes, r)
	}
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}, nil
}

func buildRoute(host string, port *ir.ServicePort, r *ir.Route, clusters *clusterSet) (*routev3.Route, error) {
	match, err := routeMatch(&r.Match, port.Protocol)
	if err != nil {
		return nil, err
	}
	action, err := routeAction(host, port, r, clusters)
	if err != nil {
		return nil, err
	}
	route := &routev3.Route{Name: r.Name, Match: match, Action: &routev3.Route_Route{Route: action}}
	if r.Fault != nil {
		// The fault filter is in both flavours' connection managers (see portHasFaults); grpc-go
		// implements it, including this per-route override.
		route.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: toAny(faultConfig(r.Fault))}
	}
	return route, nil
}

func routeMatch(m *ir.Match, proto ir.Protocol) (*routev3.RouteMatch, error) {
	rm := &routev3.RouteMatch{}
	switch {
	case m.PathExact != "":
		// An exact path implies any prefix it fits; one that it does not fit can never match.
		if m.PathPrefix != "" && !strings.HasPrefix(m.PathExact, m.PathPrefix) {
			return nil, fmt.Errorf("path %q does not start with prefix %q, so the route can never match", m.PathExact, m.PathPrefix)
		}
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.PathExact}
	case m.PathPrefix != "" && m.PathRegex != "":
		return nil, fmt.Errorf("both a path prefix %q and a path regex %q are set", m.PathPrefix, m.PathRegex)
	case m.PathPrefix != "":
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}
	case m.PathRegex != "":
		re, err := safeRegex(m.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: re}
	default:
		// grpc-go NACKs a route without a path specifier.
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	for _, h := range m.Headers {
		hm, err := headerMatcher(h)
		if err != nil {
			return nil, err
		}
		rm.Headers = append(rm.Headers, hm)
	}
	if hm, err := methodMatcher(m.Methods, proto); err != nil {
		return nil, err
	} else if hm != nil {
		rm.Headers = append(rm.Headers, hm)
	}
	// grpc-go skips a route with query parameter matchers: gRPC calls have no query string, so
	// it could never match for them anyway.
	for _, q := range m.QueryParams {
		sm, err := valueMatcher(q)
		if err != nil {
			return nil, fmt.Errorf("query parameter %q: %w", q.Name, err)
		}
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if sm == nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm, nil
}

// valueMatcher compares a header or query parameter value; nil means it must only be present.
func valueMatcher(h ir.HeaderMatch) (*matcherv3.StringMatcher, error) {
	set := 0
	for _, v := range []string{h.Exact, h.Prefix, h.Regex} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, errors.New("more than one of exact, prefix and regex is set")
	case h.Prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}}, nil
	case h.Regex != "":
		re, err := safeRegex(h.Regex)
		if err != nil {
			return nil, err
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re}}, nil
	case h.Exact != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}}, nil
	}
	return nil, nil
}

func headerMatcher(h ir.HeaderMatch) (*routev3.HeaderMatcher, error) {
	// grpc-go matches lower-case metadata keys only, and HTTP header names are case-insensitive.
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.Name)}
	sm, err := valueMatcher(h)
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", h.Name, err)
	}
	if sm == nil {
		// Nothing to compare with (an empty exact value looks the same): the header must be present.
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		hm.HeaderMatchSpecifier = stringMatch(sm)
	}
	return hm, nil
}

// methodMatcher matches the :method pseudo-header. gRPC calls are always POST and grpc-go does not
// see pseudo-headers, so on a GRPC port a method list that allows POST is dropped (always true);
// one that does not is kept (never true, for Envoy and, as :method is absent, for grpc-go too).
func methodMatcher(methods []string, proto ir.Protocol) (*routev3.HeaderMatcher, error) {
	if len(methods) == 0 || (proto == ir.ProtocolGRPC && slices.Contains(methods, "POST")) {
		return nil, nil
	}
	ms := slices.Clone(methods)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	hm := &routev3.HeaderMatcher{Name: ":method"}
	if len(ms) == 1 {
		hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ms[0]}})
		return hm, nil
	}
	quoted := make([]string, len(ms))
	for i, m := range ms {
		quoted[i] = regexp.QuoteMeta(m)
	}
	re, err := safeRegex("^(" + strings.Join(quoted, "|") + ")$")
	if err != nil {
		return nil, err
	}
	hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re}})
	return hm, nil
}

func stringMatch(sm *matcherv3.StringMatcher) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
}

// safeRegex checks the expression with Go's RE2-like engine first: Envoy and grpc-go both reject a
// whole RouteConfiguration over one bad regex.
func safeRegex(expr string) (*matcherv3.RegexMatcher, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", expr, err)
	}
	return &matcherv3.RegexMatcher{Regex: expr}, nil
}

// weightedCluster is one destination of a route, as a cluster name.
type weightedCluster struct {
	name   string
	weight uint32
}

// destinations turns a route's destinations into clusters, in the IR's order. Zero weights are
// dropped (grpc-go skips them anyway; Envoy would keep an unused reference), and at least one
// weight must remain: grpc-go NACKs a weighted_clusters action whose weights add up to 0.
func destinations(host string, port uint32, ds []ir.Destination, clusters *clusterSet) ([]weightedCluster, error) {
	var out []weightedCluster
	for _, d := range ds {
		if d.Weight == 0 {
			continue
		}
		name := ClusterName(port, d.Subset, host)
		if !clusters.has(name) {
			return nil, fmt.Errorf("destination subset %q is not a subset of the port", d.Subset)
		}
		out = append(out, weightedCluster{name: name, weight: d.Weight})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no destination with a weight above zero")
	}
	return out, nil
}

func routeAction(host string, port *ir.ServicePort, r *ir.Route, clusters *clusterSet) (*routev3.RouteAction, error) {
	wcs, err := destinations(host, port.Port, r.Destinations, clusters)
	if err != nil {
		return nil, err
	}
	a := &routev3.RouteAction{
		// Zero turns off Envoy's 15s default: the IR's zero means no timeout.
		Timeout: duration(r.Timeout),
	}
	if len(wcs) == 1 {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: wcs[0].name}
	} else {
		ws := &routev3.WeightedCluster{}
		for _, wc := range wcs {
			ws.Clusters = append(ws.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: wc.name, Weight: wrapperspb.UInt32(wc.weight)})
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: ws}
	}
	if r.Timeout > 0 {
		// grpc-go ignores timeout and enforces max_stream_duration instead.
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: duration(r.Timeout)}
	}
	if rt := r.Retry; rt != nil && rt.Attempts > 0 {
		// grpc-go NACKs num_retries below 1, so no attempts means no policy.
		rp := &routev3.RetryPolicy{RetryOn: strings.Join(rt.RetryOn, ","), NumRetries: wrapperspb.UInt32(rt.Attempts)}
		if rp.RetryOn == "" {
			rp.RetryOn = defaultRetryOn
		}
		if rt.PerTryTimeout > 0 {
			rp.PerTryTimeout = duration(rt.PerTryTimeout)
		}
		if !rt.NonIdempotent && port.Protocol == ir.ProtocolHTTP {
			// Safe default: Envoy retries only requests whose method is idempotent. grpc-go ignores
			// this (and gRPC ports never get it: every gRPC call is a POST).
			re, err := safeRegex(idempotentMethods)
			if err != nil {
				return nil, err
			}
			rp.RetriableRequestHeaders = []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: stringMatch(
				&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re}})}}
		}
		a.RetryPolicy = rp
	}
	a.HashPolicy = hashPolicies(port.Policy)
	if m := r.Mirror; m != nil && m.Percent > 0 {
		name := ClusterName(m.Port, m.Subset, ServiceHostname(m.Namespace, m.Service))
		if !clusters.has(name) {
			return nil, fmt.Errorf("mirror target %s/%s port %d subset %q is not in the mesh", m.Namespace, m.Service, m.Port, m.Subset)
		}
		a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{
			Cluster:         name,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fractionalPercent(m.Percent)},
		}}
	}
	return a, nil
}

// fractionalPercent keeps whole percentages readable and others exact to a millionth.
func fractionalPercent(p float64) *typev3.FractionalPercent {
	p = min(p, 100)
	if p == math.Trunc(p) {
		return &typev3.FractionalPercent{Numerator: uint32(p), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(p * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

// hashPolicies is what a consistent hash keys on, on every route of a port: a header (both
// flavours) or a cookie (Envoy; grpc-go ignores cookie hash policies and hashes at random).
func hashPolicies(p *ir.ClusterPolicy) []*routev3.RouteAction_HashPolicy {
	switch {
	case p == nil:
		return nil
	case p.HashHeader != "":
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(p.HashHeader)}}}}
	case p.HashCookie != nil:
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: p.HashCookie.Name, Path: "/"}
		if p.HashCookie.TTL > 0 {
			c.Ttl = duration(p.HashCookie.TTL)
		}
		return []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}}}
	}
	return nil
}
