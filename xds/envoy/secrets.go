package envoy

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// SDS secrets for Envoy sidecars. Each identity in use is a TLS certificate secret named by its
// SPIFFE ID; each trust domain in use is a validation context named TrustBundleSecret. Listeners
// and clusters name a sidecar's own certificate WorkloadSecret, which the xDS server resolves per
// node to the secret of that node's identity: the listeners stay shared by every sidecar.

// IsTrustBundleSecret reports whether name is a trust bundle's SDS name.
func IsTrustBundleSecret(name string) bool { return strings.HasPrefix(name, trustBundlePrefix) }

// identitySecret is the TLS certificate secret of one identity.
func identitySecret(id *ir.Identity) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: id.SPIFFEID,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineBytes(id.CertificateChain),
			PrivateKey:       inlineBytes(string(id.PrivateKey)),
		}},
	}
}

// trustBundleSecret is the validation context of one trust domain.
func trustBundleSecret(b *ir.TrustBundle) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: TrustBundleSecret(b.TrustDomain),
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inlineBytes(b.CACertificates),
		}},
	}
}

func inlineBytes(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(s)}}
}

// secrets builds the IR's secrets; prev are those of the previous translation, and a secret equal
// to its previous version is that very message (so the xDS server sees it unchanged by pointer).
func secrets(in *ir.IR, prev map[string]*tlsv3.Secret) map[string]*tlsv3.Secret {
	out := make(map[string]*tlsv3.Secret, len(in.Identities)+len(in.TrustBundles))
	keep := func(s *tlsv3.Secret) {
		if old := prev[s.GetName()]; old != nil && proto.Equal(old, s) {
			s = old
		}
		out[s.GetName()] = s
	}
	for i := range in.Identities {
		keep(identitySecret(&in.Identities[i]))
	}
	for i := range in.TrustBundles {
		keep(trustBundleSecret(&in.TrustBundles[i]))
	}
	return out
}
