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

// Mutual TLS for proxyless gRPC (gRFC A29, as grpc-go's xdsresource reads it in unmarshal_lds.go
// and unmarshal_cds.go): the TLS contexts name certificate provider instances of the node's
// bootstrap (certificate_providers) instead of SDS secrets, for both the workload's certificate
// and key and the CA certificates that verify the peer.

// CertificateProviderInstance is the bootstrap certificate provider instance (a file_watcher over
// the workload's certificate, key and CA files) that gRPC TLS contexts name.
const CertificateProviderInstance = "sluice"

// transportSocketTLS is the transport socket name grpc-go requires ("envoy.transport_sockets.tls").
const transportSocketTLS = "envoy.transport_sockets.tls"

// grpcCommonTLSContext presents the workload's certificate and verifies the peer's against the CA
// certificates, both from the bootstrap's provider instance; sans (exact URI SANs), when given,
// must include the peer's SPIFFE ID. grpc-go NACKs SAN matchers on the server side.
func grpcCommonTLSContext(sans []string) *tlsv3.CommonTlsContext {
	vc := &tlsv3.CertificateValidationContext{
		CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
	}
	for _, san := range sans {
		// grpc-go reads only the deprecated match_subject_alt_names (matched against every SAN of
		// the certificate, URIs included), not match_typed_subject_alt_names.
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, //nolint:staticcheck // see above
			&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}})
	}
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProviderInstance},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}
}

// grpcServerTLS is the transport socket of a STRICT gRPC server's filter chain: TLS that requires
// a client certificate signed by the mesh CA.
func grpcServerTLS() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         grpcCommonTLSContext(nil),
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}

// grpcClientTLS is the transport socket of a gRPC cluster whose servers take mTLS: the client
// presents its workload certificate and accepts a server whose certificate carries one of sans.
func grpcClientTLS(sans []string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: grpcCommonTLSContext(sans),
		})},
	}
}

// grpcServerTakesTLS reports whether a proxyless gRPC server in mode serves mutual TLS. Only
// STRICT does: grpc-go cannot accept TLS and plain text on one listener (it has no TLS inspector
// and drops filter chains that match transport_protocol "tls"), so a PERMISSIVE gRPC server keeps
// serving plain text, which every caller can still reach; see docs/xds.md.
func grpcServerTakesTLS(mode ir.MTLSMode) bool { return mode == ir.MTLSStrict }

// grpcClusters are the proxyless gRPC versions of a port's clusters where they differ from the
// shared ones: a subset with an endpoint whose server takes only mTLS gets an UpstreamTlsContext
// verifying the port's identities. grpc-go has one transport socket per cluster (it NACKs
// transport_socket_matches), so a subset mixing STRICT endpoints with others is dialled with TLS.
func grpcClusters(clusters []*clusterv3.Cluster, port *ir.ServicePort) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for i, ss := range port.Subsets {
		if !subsetTakesTLS(&ss) {
			continue
		}
		c := proto.Clone(clusters[i]).(*clusterv3.Cluster)
		c.TransportSocket = grpcClientTLS(port.Identities)
		out = append(out, c)
	}
	return out
}

func subsetTakesTLS(ss *ir.Subset) bool {
	for _, ep := range ss.Endpoints {
		if ep.Ready && grpcServerTakesTLS(ep.MTLS) {
			return true
		}
	}
	return false
}
