package envoy

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Validate checks every resource against its protoc-gen-validate rules (ValidateAll, also on the
// connection managers and TCP proxies packed inside listeners), and that the snapshot is closed:
// every cluster a route, mirror, TCP proxy or tracer names exists; every EDS cluster has a
// ClusterLoadAssignment of its service name and every ClusterLoadAssignment has a cluster; every
// RouteConfiguration a connection manager names, including the one inside a gRPC api_listener,
// exists; every secret fetched over SDS exists (but those the SDS server resolves per node); no
// two filter chains of a listener match the same connections. Each error names the resource and what is missing.
func (s *Snapshot) Validate() error {
	return s.ValidateWith(nil)
}

// Validator remembers, for the resources of the last snapshot it validated, the verdict of the
// checks that concern one resource alone (ValidateAll, also on the packed connection managers and
// TCP proxies) and the names the resource refers to (route configurations, clusters, EDS service
// names, SDS secrets). It is keyed by message pointer: a resource must not be changed after it
// was validated (xds/server's Publish asks the same). The zero Validator is ready to use; it is
// not safe for concurrent use.
type Validator struct {
	seen map[proto.Message]*resourceChecks
}

// ValidateWith is Validate, with the same verdict and errors, but a resource that v validated in
// its previous call (the same message, under the same name) is not checked or decoded again: only
// the names it refers to are looked up in s, so that a reference to a resource that went away is
// still found. v then forgets the resources that are not in s. A nil v is Validate.
func (s *Snapshot) ValidateWith(v *Validator) error {
	run := &validation{s: s, prev: map[proto.Message]*resourceChecks{}}
	if v != nil {
		if v.seen != nil {
			run.prev = v.seen
		}
		run.next = make(map[proto.Message]*resourceChecks, len(run.prev))
	}
	// Errors are reported in name order; sorting costs more than the checks of remembered
	// resources, so it is done only when there is something to report.
	err := run.all(false)
	if err != nil {
		err = run.all(true)
	}
	if v != nil {
		v.seen = run.next
	}
	return err
}

// resourceChecks are the outcome of checking one resource alone: failures, and the references to
// look up in the snapshot, in the order they are reported.
type resourceChecks struct {
	flavour Flavour // of a listener
	name    string  // the key it was stored under; the messages name it
	items   []checkItem
}

type checkKind uint8

const (
	checkFailed    checkKind = iota // err is a failure of the resource alone
	checkCluster                    // cluster name must exist
	checkRoute                      // route configuration name must exist
	checkSecret                     // secret name must exist
	checkEndpoints                  // ClusterLoadAssignment name must exist; it is used by an EDS cluster
)

type checkItem struct {
	kind  checkKind
	where string
	name  string
	err   error
}

// validation is one ValidateWith call.
type validation struct {
	s          *Snapshot
	prev, next map[proto.Message]*resourceChecks // next is nil without a Validator
	errs       []error
	edsNames   map[string]bool
}

func keys[V any](m map[string]V, sorted bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	if sorted {
		slices.Sort(out)
	}
	return out
}

func (r *validation) all(sorted bool) error {
	s := r.s
	r.errs, r.edsNames = nil, map[string]bool{}
	flavours := slices.Collect(maps.Keys(s.Listeners))
	if sorted {
		slices.Sort(flavours)
	}
	for _, f := range flavours {
		for _, name := range keys(s.Listeners[f], sorted) {
			// Each resource must be stored under its own name: that is what proxies request.
			l := s.Listeners[f][name]
			if l.GetName() != name {
				r.fail("%s listener %q: resource is named %q", f, name, l.GetName())
			}
			r.replay(r.checks(f, name, l, func(x *extractor) { x.listener(f, name, l) }))
		}
	}
	for _, name := range keys(s.Routes, sorted) {
		rc := s.Routes[name]
		if rc.GetName() != name {
			r.fail("route configuration %q: resource is named %q", name, rc.GetName())
		}
		r.replay(r.checks("", name, rc, func(x *extractor) {
			where := fmt.Sprintf("route configuration %q", name)
			x.check(where, rc.ValidateAll())
			x.routeClusters(where, rc)
		}))
	}
	cluster := func(f Flavour, name string, c *clusterv3.Cluster) {
		where := fmt.Sprintf("cluster %q", name)
		if f != "" {
			where = fmt.Sprintf("%s cluster %q", f, name)
		}
		if c.GetName() != name {
			r.fail("%s: resource is named %q", where, c.GetName())
		}
		r.replay(r.checks(f, name, c, func(x *extractor) {
			x.check(where, c.ValidateAll())
			if c.GetType() == clusterv3.Cluster_EDS {
				x.add(checkItem{kind: checkEndpoints, where: where, name: edsServiceName(c)})
			}
			x.transportSocketSecrets(where, c.GetTransportSocket(), false)
		}))
	}
	for _, name := range keys(s.Clusters, sorted) {
		cluster("", name, s.Clusters[name])
	}
	overridden := slices.Collect(maps.Keys(s.ClusterOverrides))
	if sorted {
		slices.Sort(overridden)
	}
	for _, f := range overridden {
		for _, name := range keys(s.ClusterOverrides[f], sorted) {
			// An override replaces a cluster for one flavour; it cannot add one, or the flavours
			// would disagree about which clusters routes may name.
			if s.Clusters[name] == nil {
				r.fail("%s cluster %q: overrides no cluster of that name", f, name)
			}
			cluster(f, name, s.ClusterOverrides[f][name])
		}
	}
	for _, name := range keys(s.Endpoints, sorted) {
		cla := s.Endpoints[name]
		if cla.GetClusterName() != name {
			r.fail("%s: is stored under the name %q", fmt.Sprintf("cluster load assignment %q", cla.GetClusterName()), name)
		}
		r.replay(r.checks("", name, cla, func(x *extractor) {
			x.check(fmt.Sprintf("cluster load assignment %q", name), cla.ValidateAll())
		}))
		if !r.edsNames[name] {
			r.fail("%s: no EDS cluster uses it", fmt.Sprintf("cluster load assignment %q", name))
		}
	}
	for _, name := range keys(s.Secrets, sorted) {
		sec := s.Secrets[name]
		if sec.GetName() != name {
			r.fail("secret %q: resource is named %q", name, sec.GetName())
		}
		r.replay(r.checks("", name, sec, func(x *extractor) {
			x.check(fmt.Sprintf("secret %q", name), sec.ValidateAll())
		}))
	}
	return errors.Join(r.errs...)
}

// checks returns the checks of one resource alone: remembered, or made by extract.
func (r *validation) checks(f Flavour, name string, msg proto.Message, extract func(*extractor)) *resourceChecks {
	if rc := r.next[msg]; rc != nil && rc.flavour == f && rc.name == name {
		return rc
	}
	if rc := r.prev[msg]; rc != nil && rc.flavour == f && rc.name == name {
		if r.next != nil {
			r.next[msg] = rc
		}
		return rc
	}
	x := &extractor{}
	extract(x)
	rc := &resourceChecks{flavour: f, name: name, items: x.items}
	if r.next != nil {
		r.next[msg] = rc
	}
	return rc
}

// replay reports the failures of rc and looks its references up in the snapshot.
func (r *validation) replay(rc *resourceChecks) {
	s := r.s
	for _, it := range rc.items {
		switch it.kind {
		case checkFailed:
			r.errs = append(r.errs, it.err)
		case checkCluster:
			if s.Clusters[it.name] == nil {
				r.fail("%s: cluster %q does not exist", it.where, it.name)
			}
		case checkRoute:
			if s.Routes[it.name] == nil {
				r.fail("%s: route configuration %q does not exist", it.where, it.name)
			}
		case checkSecret:
			if s.Secrets[it.name] == nil {
				r.fail("%s: SDS secret %q does not exist", it.where, it.name)
			}
		case checkEndpoints:
			r.edsNames[it.name] = true
			if s.Endpoints[it.name] == nil {
				r.fail("%s: EDS resource (ClusterLoadAssignment) %q does not exist", it.where, it.name)
			}
		}
	}
}

func (r *validation) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

// extractor checks one resource alone and lists the references to look up in the snapshot.
type extractor struct {
	items []checkItem
}

func (x *extractor) add(it checkItem) {
	x.items = append(x.items, it)
}

func (x *extractor) fail(format string, args ...any) {
	x.add(checkItem{kind: checkFailed, err: fmt.Errorf(format, args...)})
}

func (x *extractor) check(where string, err error) {
	if err != nil {
		x.fail("%s: %w", where, err)
	}
}

func (x *extractor) cluster(where, name string) {
	x.add(checkItem{kind: checkCluster, where: where, name: name})
}

func (x *extractor) listener(f Flavour, name string, l *listenerv3.Listener) {
	where := fmt.Sprintf("%s listener %q", f, name)
	x.check(where, l.ValidateAll())
	hcms, err := listenerHCMs(l)
	if err != nil {
		x.fail("%s: %w", where, err)
	}
	for _, h := range hcms {
		hw := where + " " + h.where
		x.check(hw, h.hcm.ValidateAll())
		for _, f := range h.hcm.GetHttpFilters() {
			// protoc-gen-validate does not look inside Any: the RBAC rules are checked here.
			fw := fmt.Sprintf("%s HTTP filter %q", hw, f.GetName())
			if cfg := (&rbacv3.RBAC{}); x.unpack(fw, f.GetTypedConfig(), cfg) {
				x.check(fw, cfg.ValidateAll())
			}
		}
		switch rs := h.hcm.GetRouteSpecifier().(type) {
		case *hcmv3.HttpConnectionManager_Rds:
			x.add(checkItem{kind: checkRoute, where: hw, name: rs.Rds.GetRouteConfigName()})
		case *hcmv3.HttpConnectionManager_RouteConfig:
			x.routeClusters(hw+" inline route configuration", rs.RouteConfig)
		}
		x.tracerCluster(hw, h.hcm.GetTracing().GetProvider())
	}
	x.distinctMatches(where, l.GetFilterChains())
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:len(chains):len(chains)], d)
	}
	for _, fc := range chains {
		fw := fmt.Sprintf("%s filter chain %q", where, fc.GetName())
		x.transportSocketSecrets(fw, fc.GetTransportSocket(), true)
		for _, f := range fc.GetFilters() {
			x.networkRBAC(fw, f)
			tp := &tcpproxyv3.TcpProxy{}
			if !x.unpack(fmt.Sprintf("%s filter %q", fw, f.GetName()), f.GetTypedConfig(), tp) {
				continue
			}
			x.check(fw+" tcp_proxy", tp.ValidateAll())
			if c := tp.GetCluster(); c != "" {
				x.cluster(fw+" tcp_proxy", c)
			}
			for _, wc := range tp.GetWeightedClusters().GetClusters() {
				x.cluster(fw+" tcp_proxy", wc.GetName())
			}
		}
	}
}

// distinctMatches checks that no two filter chains have the same filter_chain_match: Envoy
// rejects such a listener, since it could not tell which chain a connection is for.
func (x *extractor) distinctMatches(where string, chains []*listenerv3.FilterChain) {
	seen := make(map[string]string, len(chains))
	for _, fc := range chains {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(fc.GetFilterChainMatch())
		if err != nil {
			x.fail("%s filter chain %q: %w", where, fc.GetName(), err)
			continue
		}
		if other, dup := seen[string(b)]; dup {
			x.fail("%s: filter chains %q and %q have the same filter_chain_match", where, other, fc.GetName())
			continue
		}
		seen[string(b)] = fc.GetName()
	}
}

// networkRBAC checks the rules of a network RBAC filter, which protoc-gen-validate does not see
// inside Any.
func (x *extractor) networkRBAC(where string, f *listenerv3.Filter) {
	fw := fmt.Sprintf("%s filter %q", where, f.GetName())
	if cfg := (&netrbacv3.RBAC{}); x.unpack(fw, f.GetTypedConfig(), cfg) {
		x.check(fw, cfg.ValidateAll())
	}
}

// unpack decodes tc into m when tc holds m's type; false when it holds another type or nothing,
// or when it does not decode (a failure of where).
func (x *extractor) unpack(where string, tc *anypb.Any, m proto.Message) bool {
	if tc == nil || !tc.MessageIs(m) {
		return false
	}
	if err := tc.UnmarshalTo(m); err != nil {
		x.fail("%s: %w", where, err)
		return false
	}
	return true
}

// routeClusters checks every cluster the routes send to or mirror to.
func (x *extractor) routeClusters(where string, rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			rw := fmt.Sprintf("%s virtual host %q route %q", where, vh.GetName(), r.GetName())
			a := r.GetRoute()
			if c := a.GetCluster(); c != "" {
				x.cluster(rw, c)
			}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				x.cluster(rw+" weighted cluster", wc.GetName())
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				if m.GetCluster() != "" {
					x.cluster(rw+" mirror", m.GetCluster())
				}
			}
		}
	}
}

// tracerCluster checks the collector cluster of an OpenTelemetry tracer.
func (x *extractor) tracerCluster(where string, p *tracev3.Tracing_Http) {
	otel := &tracev3.OpenTelemetryConfig{}
	if !x.unpack(where+" tracing", p.GetTypedConfig(), otel) {
		return
	}
	if c := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "" {
		x.cluster(where+" tracing", c)
	}
}

// transportSocketSecrets checks the secrets a TLS transport socket fetches over SDS. Secrets
// referenced without a config source are static ones from the bootstrap, not ours; the SDS server
// resolves WorkloadSecret and the trust bundles per node, so they need not be in the snapshot.
func (x *extractor) transportSocketSecrets(where string, ts *corev3.TransportSocket, downstream bool) {
	// Both TLS contexts wrap a CommonTlsContext, which holds the SDS references.
	var ctx interface {
		proto.Message
		GetCommonTlsContext() *tlsv3.CommonTlsContext
		ValidateAll() error
	} = &tlsv3.UpstreamTlsContext{}
	if downstream {
		ctx = &tlsv3.DownstreamTlsContext{}
	}
	if !x.unpack(where+" transport socket", ts.GetTypedConfig(), ctx) {
		return
	}
	x.check(where+" transport socket", ctx.ValidateAll())
	common := ctx.GetCommonTlsContext()
	refs := slices.Clone(common.GetTlsCertificateSdsSecretConfigs())
	refs = append(refs, common.GetValidationContextSdsSecretConfig(), common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	for _, r := range refs {
		if r.GetSdsConfig() != nil && !servedPerNode(r.GetName()) {
			x.add(checkItem{kind: checkSecret, where: where, name: r.GetName()})
		}
	}
}

// edsServiceName is the ClusterLoadAssignment an EDS cluster asks for.
func edsServiceName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}
