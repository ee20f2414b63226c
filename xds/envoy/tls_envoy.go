package envoy

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Mutual TLS for Envoy sidecars: the TLS contexts fetch the workload's certificate
// (WorkloadSecret) and the trust domain's CA certificates (TrustBundleSecret) over SDS on the ADS
// stream, so a rotation reaches Envoy without touching listeners or clusters. Envoy uses a new
// certificate for new handshakes; established connections finish on the old one.

// alpnHTTP is what an inbound TLS chain of an HTTP or gRPC port offers: the caller's proxy says
// which protocol it speaks, and the connection manager (codec AUTO) follows it.
var alpnHTTP = []string{"h2", "http/1.1"}

// sdsSecret is a reference to a secret fetched over the ADS stream.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsConfigSource()}
}

// envoyCommonTLSContext presents the workload's certificate and verifies the peer's against the
// trust bundle of trustDomain; sans (exact URI SANs), when given, must include the peer's SPIFFE
// ID.
func envoyCommonTLSContext(trustDomain string, sans []string, alpn []string) *tlsv3.CommonTlsContext {
	def := &tlsv3.CertificateValidationContext{}
	for _, san := range sans {
		def.MatchTypedSubjectAltNames = append(def.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
		})
	}
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(WorkloadSecret)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         def,
			ValidationContextSdsSecretConfig: sdsSecret(TrustBundleSecret(trustDomain)),
		}},
		AlpnProtocols: alpn,
	}
}

// envoyServerTLS is the transport socket of an inbound TLS chain: the caller must present a
// certificate from the trust bundle of trustDomain (any SPIFFE ID of it: authorization, when
// the workload has rules, decides who may call what).
func envoyServerTLS(trustDomain string, alpn []string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         envoyCommonTLSContext(trustDomain, nil, alpn),
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}

// envoyClientTLS is the transport socket of a cluster whose servers take mTLS: Envoy presents its
// workload's certificate and accepts a server whose certificate carries one of sans and chains to
// the trust bundle of trustDomain. gRPC clusters offer h2 in ALPN; the others offer nothing, and the
// server's connection manager tells HTTP/1.1 from HTTP/2 by the first bytes.
func envoyClientTLS(trustDomain string, sans []string, protocol ir.Protocol) *corev3.TransportSocket {
	var alpn []string
	if protocol == ir.ProtocolGRPC {
		alpn = []string{"h2"}
	}
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: envoyCommonTLSContext(trustDomain, sans, alpn),
		})},
	}
}

// envoyClusters are the Envoy sidecar's versions of a port's clusters where they differ from the
// shared ones: a subset whose servers take mTLS (envoySubsetTakesTLS) gets an UpstreamTlsContext
// verifying the port's identities against the trust bundle of their trust domain. When the
// identities span several trust domains, the first (sorted) one's bundle is used, and servers of
// the others fail verification unless that bundle also holds their CA.
func envoyClusters(clusters []*clusterv3.Cluster, port *ir.ServicePort) []*clusterv3.Cluster {
	if len(port.Identities) == 0 {
		return nil
	}
	td := trustDomainOf(port.Identities[0])
	var out []*clusterv3.Cluster
	for i, ss := range port.Subsets {
		if !envoySubsetTakesTLS(&ss) {
			continue
		}
		c := proto.Clone(clusters[i]).(*clusterv3.Cluster)
		c.TransportSocket = envoyClientTLS(td, port.Identities, port.Protocol)
		out = append(out, c)
	}
	return out
}

// envoySubsetTakesTLS reports whether an Envoy sidecar dials a subset with mTLS: when one of its
// ready endpoints is STRICT (it refuses plain text), or when every ready endpoint is STRICT or
// PERMISSIVE (all accept mTLS). A subset mixing PERMISSIVE and DISABLE endpoints is dialled in
// plain text, which both accept; one mixing STRICT and DISABLE cannot be served both ways, and its
// DISABLE endpoints fail (one transport socket per cluster, as for proxyless gRPC).
func envoySubsetTakesTLS(ss *ir.Subset) bool {
	ready, mtls := 0, 0
	for _, ep := range ss.Endpoints {
		if !ep.Ready {
			continue
		}
		ready++
		switch ep.MTLS {
		case ir.MTLSStrict:
			return true
		case ir.MTLSPermissive:
			mtls++
		}
	}
	return ready > 0 && mtls == ready
}
