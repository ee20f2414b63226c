package envoy

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	healthcheckv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// An injected sidecar's bootstrap adds, to Bootstrap's: mutual TLS to the xDS server with the
// workload's certificate files, and a health listener that answers the kubelet's probes. The
// listener exists because inbound capture sends every port of the pod's IP to the sidecar, where
// a STRICT ZeroTrust refuses a plain-text probe: the injector points the probes here instead (a
// port capture leaves alone), and the sidecar runs them against the application on 127.0.0.1.

// Defaults of the sidecar's health listener.
const (
	DefaultHealthPort = 15021
	// ReadyPath is the sidecar's own readiness: Envoy's admin /ready (LIVE once the first config
	// from the xDS server is in).
	ReadyPath = "/healthz/ready"
	// AppHealthPrefix starts the paths of the rewritten application probes:
	// /app-health/<container>/<liveness|readiness|startup>.
	AppHealthPrefix = "/app-health/"
	// HealthListener is the health listener's name.
	HealthListener = "sluice-health"
)

// XDSClientTLS are the files of the sidecar's mutual TLS to the xDS server: its workload
// certificate and key, and the CA certificates that sign the server's certificate. Envoy reloads
// certificates only when they come over SDS, so the bootstrap takes them from two file-based SDS
// sources in SDSDir (XDSClientSecretFiles writes them; sluice-init does in a pod), whose secrets
// name the certificate files and watch their directory: when the kubelet swaps a renewed Secret
// volume's ..data link, the next connection to the xDS server uses the new certificate.
type XDSClientTLS struct {
	CertFile, KeyFile, CAFile string
	// ServerName is sent as SNI and must be a DNS SAN of the server's certificate.
	ServerName string
	// SDSDir holds the SDS files.
	SDSDir string
}

// The names of the xDS client's SDS secrets, and of their files in XDSClientTLS.SDSDir.
const (
	XDSClientCertSecret = "sluice-xds-client-certificate"
	XDSClientCASecret   = "sluice-xds-client-ca"
)

func (t XDSClientTLS) check() error {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" || t.ServerName == "" || t.SDSDir == "" {
		return errors.New("bootstrap: the xDS TLS certificate, key and CA files, the server name and the SDS directory are all required")
	}
	return nil
}

func (t XDSClientTLS) sdsFile(secret string) string { return path.Join(t.SDSDir, secret+".yaml") }

// XDSClientSecrets are the secrets the SDS files hold: the certificate and key, and a validation
// context with the CA and the server name's SAN check.
func XDSClientSecrets(t XDSClientTLS) ([]*tlsv3.Secret, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	return []*tlsv3.Secret{
		{Name: XDSClientCASecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa:        file(t.CAFile),
			WatchedDirectory: &corev3.WatchedDirectory{Path: path.Dir(t.CAFile)},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: exactStringMatcher(t.ServerName),
			}},
		}}},
		{Name: XDSClientCertSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: file(t.CertFile),
			PrivateKey:       file(t.KeyFile),
			WatchedDirectory: &corev3.WatchedDirectory{Path: path.Dir(t.CertFile)},
		}}},
	}, nil
}

// XDSClientSecretFiles are the SDS files (path → content) of XDSClientTLS: each a discovery
// response holding one secret of XDSClientSecrets, as Envoy reads a path config source.
func XDSClientSecretFiles(t XDSClientTLS) (map[string][]byte, error) {
	secrets, err := XDSClientSecrets(t)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, sec := range secrets {
		doc, err := ProtoYAML(&discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{toAny(sec)}})
		if err != nil {
			return nil, err
		}
		files[t.sdsFile(sec.GetName())] = doc
	}
	return files, nil
}

// ProbeKind says how the sidecar checks the application for a probe.
type ProbeKind string

// The probe kinds: HTTP(S) requests are forwarded to the application; TCP and gRPC probes become
// active health checks of a cluster, whose result the health listener reports.
const (
	ProbeHTTP  ProbeKind = "HTTP"
	ProbeHTTPS ProbeKind = "HTTPS"
	ProbeTCP   ProbeKind = "TCP"
	ProbeGRPC  ProbeKind = "GRPC"
)

// AppProbe is one kubelet probe of an application container, answered on the health listener at
// Path (under AppHealthPrefix).
type AppProbe struct {
	Path string
	Kind ProbeKind
	Port uint32
	// AppPath is the HTTP path (and query) the application serves the probe on.
	AppPath string
	// GRPCService is the service name of a gRPC health check ("" is the server's overall health).
	GRPCService string
	// Period and Timeout of the probe: how often a TCP or gRPC health check runs, and how long
	// one may take.
	Period, Timeout time.Duration
}

// SidecarOptions are what an injected sidecar adds to Bootstrap.
type SidecarOptions struct {
	// XDSTLS, when set, makes the xDS connection mutual TLS with these files.
	XDSTLS *XDSClientTLS
	// HealthPort serves ReadyPath and the application probes (default DefaultHealthPort).
	HealthPort uint32
	Probes     []AppProbe
}

// SidecarBootstrap is Bootstrap with what an injected sidecar adds (SidecarOptions).
func SidecarBootstrap(o BootstrapOptions, s SidecarOptions) (*bootstrapv3.Bootstrap, error) {
	b, err := Bootstrap(o)
	if err != nil {
		return nil, err
	}
	if s.XDSTLS != nil {
		if err := secureXDSCluster(b, *s.XDSTLS); err != nil {
			return nil, err
		}
	}
	if s.HealthPort == 0 {
		s.HealthPort = DefaultHealthPort
	}
	listener, clusters, err := healthListener(s.HealthPort, s.Probes)
	if err != nil {
		return nil, err
	}
	sr := b.GetStaticResources()
	sr.Listeners = append(sr.Listeners, listener)
	sr.Clusters = append(sr.Clusters, clusters...)
	return b, nil
}

// secureXDSCluster gives the xDS cluster a TLS transport socket that presents the workload's
// certificate, both from the SDS files of t.
func secureXDSCluster(b *bootstrapv3.Bootstrap, t XDSClientTLS) error {
	if err := t.check(); err != nil {
		return err
	}
	name := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName()
	i := slices.IndexFunc(b.GetStaticResources().GetClusters(), func(c *clusterv3.Cluster) bool { return c.GetName() == name })
	if i < 0 {
		return fmt.Errorf("bootstrap: no static cluster %q for the xDS server", name)
	}
	fromFile := func(secret string) *tlsv3.SdsSecretConfig {
		return &tlsv3.SdsSecretConfig{Name: secret, SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3,
			// The file itself never changes: its secret watches the certificates' directory.
			ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{
				Path: t.sdsFile(secret),
			}},
		}}
	}
	ctx := &tlsv3.UpstreamTlsContext{
		Sni: t.ServerName,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{fromFile(XDSClientCertSecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: fromFile(XDSClientCASecret),
			},
		},
	}
	b.StaticResources.Clusters[i].TransportSocket = &corev3.TransportSocket{
		Name:       transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)},
	}
	return nil
}

// ProbeClusterName names the cluster a probe reaches the application through.
func ProbeClusterName(p AppProbe) string {
	name := "sluice-probe-" + strings.ToLower(string(p.Kind)) + "-" + strconv.Itoa(int(p.Port))
	if p.Kind == ProbeGRPC && p.GRPCService != "" {
		name += "-" + p.GRPCService
	}
	return name
}

// ValidateBootstrap checks a bootstrap as Snapshot.Validate checks resources: ValidateAll on it,
// on the connection managers and TLS contexts packed in its static listeners and clusters, and on
// fileSecrets (the secrets its file-based SDS sources hold), that every cluster its static
// listeners name is one of its static clusters, and that every SDS secret it names is in
// fileSecrets.
func ValidateBootstrap(b *bootstrapv3.Bootstrap, fileSecrets ...*tlsv3.Secret) error {
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap: %w", err))
	}
	s := NewSnapshot()
	for _, l := range b.GetStaticResources().GetListeners() {
		s.Listeners[FlavourEnvoy][l.GetName()] = l
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		s.Clusters[c.GetName()] = c
	}
	for _, sec := range fileSecrets {
		s.Secrets[sec.GetName()] = sec
	}
	if err := s.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap static resources: %w", err))
	}
	return errors.Join(errs...)
}

// healthListener serves ReadyPath from the admin interface and each probe at its Path.
func healthListener(port uint32, probes []AppProbe) (*listenerv3.Listener, []*clusterv3.Cluster, error) {
	routes := []*routev3.Route{prefixRewriteRoute("sidecar-ready", ReadyPath, "/ready", AdminCluster, 0)}
	var filters []*hcmv3.HttpFilter
	clusters := map[string]*clusterv3.Cluster{}
	for _, p := range probes {
		if !strings.HasPrefix(p.Path, AppHealthPrefix) || p.Port == 0 || p.Port > 65535 {
			return nil, nil, fmt.Errorf("bootstrap: probe %q: the path must start with %q and the port be 1-65535", p.Path, AppHealthPrefix)
		}
		timeout := p.Timeout
		if timeout <= 0 {
			timeout = time.Second
		}
		name := ProbeClusterName(p)
		switch p.Kind {
		case ProbeHTTP, ProbeHTTPS:
			appPath := p.AppPath
			if appPath == "" {
				appPath = "/"
			}
			routes = append(routes, prefixRewriteRoute(p.Path, p.Path, appPath, name, timeout))
			clusters[name] = probeCluster(name, p)
		case ProbeTCP, ProbeGRPC:
			f, err := healthCheckFilter(p.Path, name)
			if err != nil {
				return nil, nil, err
			}
			filters = append(filters, f)
			c := probeCluster(name, p)
			period := p.Period
			if period <= 0 {
				period = 10 * time.Second
			}
			hc := &corev3.HealthCheck{
				Timeout:            duration(timeout),
				Interval:           duration(period),
				NoTrafficInterval:  duration(period), // nothing but the checks ever uses the cluster
				UnhealthyThreshold: uint32Value(1),   // the kubelet applies the probe's thresholds
				HealthyThreshold:   uint32Value(1),
			}
			if p.Kind == ProbeTCP {
				hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
			} else {
				hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: p.GRPCService}}
			}
			c.HealthChecks = []*corev3.HealthCheck{hc}
			clusters[name] = c
		default:
			return nil, nil, fmt.Errorf("bootstrap: probe %q: unknown kind %q", p.Path, p.Kind)
		}
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: HealthListener,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         HealthListener,
			VirtualHosts: []*routev3.VirtualHost{{Name: HealthListener, Domains: []string{"*"}, Routes: routes}},
		}},
		HttpFilters: append(filters, routerFilter()),
	}
	l := &listenerv3.Listener{
		Name:         HealthListener,
		Address:      socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Name: HealthListener, Filters: []*listenerv3.Filter{hcmFilter(hcm)}}},
	}
	names := slices.Sorted(maps.Keys(clusters))
	out := make([]*clusterv3.Cluster, len(names))
	for i, n := range names {
		out[i] = clusters[n]
	}
	return l, out, nil
}

// prefixRewriteRoute sends requests for exactly path to cluster as rewrite.
func prefixRewriteRoute(name, path, rewrite, cluster string, timeout time.Duration) *routev3.Route {
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		PrefixRewrite:    rewrite,
	}
	if timeout > 0 {
		action.Timeout = duration(timeout)
	}
	return &routev3.Route{
		Name:   name,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: path}},
		Action: &routev3.Route_Route{Route: action},
	}
}

// probeCluster reaches the application on 127.0.0.1 (the sidecar's UID is not captured), over TLS
// without verification for an HTTPS probe, as the kubelet does.
func probeCluster(name string, p AppProbe) *clusterv3.Cluster {
	c := hostCluster(name, "127.0.0.1", p.Port, p.Kind == ProbeGRPC, DefaultConnectTimeout)
	if p.Kind == ProbeHTTPS {
		c.TransportSocket = &corev3.TransportSocket{
			Name:       transportSocketTLS,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.UpstreamTlsContext{})},
		}
	}
	return c
}

// healthCheckFilter answers requests for path itself: 200 while the cluster's one host passes its
// active health check, 503 otherwise.
func healthCheckFilter(path, cluster string) (*hcmv3.HttpFilter, error) {
	cfg := &healthcheckv3.HealthCheck{
		PassThroughMode: wrapperspb.Bool(false),
		Headers: []*routev3.HeaderMatcher{{
			Name:                 ":path",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactStringMatcher(path)},
		}},
		ClusterMinHealthyPercentages: map[string]*typev3.Percent{cluster: {Value: 100}},
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: probe %q: %w", path, err)
	}
	return &hcmv3.HttpFilter{
		// Envoy finds the filter by its config's type; the name only has to be unique.
		Name:       "sluice.probe" + path,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(cfg)},
	}, nil
}

func exactStringMatcher(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
