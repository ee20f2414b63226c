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
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Validate checks every resource against its protoc-gen-validate rules (ValidateAll, also on the
// connection managers and TCP proxies packed inside listeners), and that the snapshot is closed:
// every cluster a route, mirror, TCP proxy or tracer names exists; every EDS cluster has a
// ClusterLoadAssignment of its service name and every ClusterLoadAssignment has a cluster; every
// RouteConfiguration a connection manager names, including the one inside a gRPC api_listener,
// exists; every secret fetched over SDS exists. Each error names the resource and what is missing.
func (s *Snapshot) Validate() error {
	v := &validator{s: s}
	for _, f := range slices.Sorted(maps.Keys(s.Listeners)) {
		for _, name := range slices.Sorted(maps.Keys(s.Listeners[f])) {
			v.listener(f, name, s.Listeners[f][name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Routes)) {
		rc := s.Routes[name]
		where := fmt.Sprintf("route configuration %q", name)
		v.named(where, name, rc.GetName())
		v.check(where, rc.ValidateAll())
		v.routeClusters(where, rc)
	}
	edsNames := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(s.Clusters)) {
		c := s.Clusters[name]
		where := fmt.Sprintf("cluster %q", name)
		v.named(where, name, c.GetName())
		v.check(where, c.ValidateAll())
		if c.GetType() == clusterv3.Cluster_EDS {
			eds := edsServiceName(c)
			edsNames[eds] = true
			if s.Endpoints[eds] == nil {
				v.fail("%s: EDS resource (ClusterLoadAssignment) %q does not exist", where, eds)
			}
		}
		v.transportSocketSecrets(where, c.GetTransportSocket(), false)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Endpoints)) {
		cla := s.Endpoints[name]
		where := fmt.Sprintf("cluster load assignment %q", name)
		if cla.GetClusterName() != name {
			v.fail("%s: is stored under the name %q", fmt.Sprintf("cluster load assignment %q", cla.GetClusterName()), name)
		}
		v.check(where, cla.ValidateAll())
		if !edsNames[name] {
			v.fail("%s: no EDS cluster uses it", where)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Secrets)) {
		sec := s.Secrets[name]
		where := fmt.Sprintf("secret %q", name)
		v.named(where, name, sec.GetName())
		v.check(where, sec.ValidateAll())
	}
	return errors.Join(v.errs...)
}

type validator struct {
	s    *Snapshot
	errs []error
}

func (v *validator) fail(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) check(where string, err error) {
	if err != nil {
		v.fail("%s: %w", where, err)
	}
}

// named checks that a resource is stored under its own name: that is what proxies request.
func (v *validator) named(where, key, name string) {
	if key != name {
		v.fail("%s: resource is named %q", where, name)
	}
}

func (v *validator) cluster(where, name string) {
	if v.s.Clusters[name] == nil {
		v.fail("%s: cluster %q does not exist", where, name)
	}
}

func (v *validator) listener(f Flavour, name string, l *listenerv3.Listener) {
	where := fmt.Sprintf("%s listener %q", f, name)
	v.named(where, name, l.GetName())
	v.check(where, l.ValidateAll())
	hcms, err := listenerHCMs(l)
	if err != nil {
		v.fail("%s: %w", where, err)
	}
	for _, h := range hcms {
		hw := where + " " + h.where
		v.check(hw, h.hcm.ValidateAll())
		switch rs := h.hcm.GetRouteSpecifier().(type) {
		case *hcmv3.HttpConnectionManager_Rds:
			if name := rs.Rds.GetRouteConfigName(); v.s.Routes[name] == nil {
				v.fail("%s: route configuration %q does not exist", hw, name)
			}
		case *hcmv3.HttpConnectionManager_RouteConfig:
			v.routeClusters(hw+" inline route configuration", rs.RouteConfig)
		}
		v.tracerCluster(hw, h.hcm.GetTracing().GetProvider())
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains[:len(chains):len(chains)], d)
	}
	for _, fc := range chains {
		fw := fmt.Sprintf("%s filter chain %q", where, fc.GetName())
		v.transportSocketSecrets(fw, fc.GetTransportSocket(), true)
		for _, f := range fc.GetFilters() {
			tp := &tcpproxyv3.TcpProxy{}
			if tc := f.GetTypedConfig(); tc == nil || !tc.MessageIs(tp) {
				continue
			} else if err := tc.UnmarshalTo(tp); err != nil {
				v.fail("%s filter %q: %w", fw, f.GetName(), err)
				continue
			}
			v.check(fw+" tcp_proxy", tp.ValidateAll())
			if c := tp.GetCluster(); c != "" {
				v.cluster(fw+" tcp_proxy", c)
			}
			for _, wc := range tp.GetWeightedClusters().GetClusters() {
				v.cluster(fw+" tcp_proxy", wc.GetName())
			}
		}
	}
}

// routeClusters checks every cluster the routes send to or mirror to.
func (v *validator) routeClusters(where string, rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			rw := fmt.Sprintf("%s virtual host %q route %q", where, vh.GetName(), r.GetName())
			a := r.GetRoute()
			if c := a.GetCluster(); c != "" {
				v.cluster(rw, c)
			}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				v.cluster(rw+" weighted cluster", wc.GetName())
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				if m.GetCluster() != "" {
					v.cluster(rw+" mirror", m.GetCluster())
				}
			}
		}
	}
}

// tracerCluster checks the collector cluster of an OpenTelemetry tracer.
func (v *validator) tracerCluster(where string, p *tracev3.Tracing_Http) {
	otel := &tracev3.OpenTelemetryConfig{}
	if tc := p.GetTypedConfig(); tc == nil || !tc.MessageIs(otel) {
		return
	} else if err := tc.UnmarshalTo(otel); err != nil {
		v.fail("%s tracing: %w", where, err)
		return
	}
	if c := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "" {
		v.cluster(where+" tracing", c)
	}
}

// transportSocketSecrets checks the secrets a TLS transport socket fetches over SDS. Secrets
// referenced without a config source are static ones from the bootstrap, not ours.
func (v *validator) transportSocketSecrets(where string, ts *corev3.TransportSocket, downstream bool) {
	tc := ts.GetTypedConfig()
	if tc == nil {
		return
	}
	var common *tlsv3.CommonTlsContext
	if downstream {
		ctx := &tlsv3.DownstreamTlsContext{}
		if !tc.MessageIs(ctx) {
			return
		}
		if err := tc.UnmarshalTo(ctx); err != nil {
			v.fail("%s transport socket: %w", where, err)
			return
		}
		common = ctx.GetCommonTlsContext()
	} else {
		ctx := &tlsv3.UpstreamTlsContext{}
		if !tc.MessageIs(ctx) {
			return
		}
		if err := tc.UnmarshalTo(ctx); err != nil {
			v.fail("%s transport socket: %w", where, err)
			return
		}
		common = ctx.GetCommonTlsContext()
	}
	refs := slices.Clone(common.GetTlsCertificateSdsSecretConfigs())
	refs = append(refs, common.GetValidationContextSdsSecretConfig(), common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	for _, r := range refs {
		if r.GetSdsConfig() != nil && v.s.Secrets[r.GetName()] == nil {
			v.fail("%s: SDS secret %q does not exist", where, r.GetName())
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
