package sandbox

import (
	"context"
	"net"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// The xDS channel is mutual TLS, as in a real install (config/xds-tls): the operator's server
// certificate comes from the mesh CA, and every client presents a workload certificate of it.

const (
	// xdsCertificate names the operator's xDS server Certificate and Secret, in OperatorNamespace.
	xdsCertificate = "sluice-xds"
	// clientServiceAccount is the identity of the default grpc-bootstrap.json (Options.ClientBootstrap).
	clientServiceAccount = "sandbox-client"
	clientNamespace      = "default"
)

// serveXDSCertificate has cert-manager issue the xDS server's certificate (for the address the
// clients dial) and writes its Secret into the directory returned, the operator's --xds-tls-dir:
// tls.crt, tls.key, and ca.crt, the CA the clients' certificates must chain to.
func (s *Sandbox) serveXDSCertificate(ctx context.Context) (string, error) {
	host, _, err := net.SplitHostPort(XDSAddr)
	if err != nil {
		return "", err
	}
	secret, err := s.issueCertificate(ctx, OperatorNamespace, xdsCertificate, map[string]any{
		"ipAddresses": []any{host},
		"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
		"usages":      []any{"server auth", "digital signature", "key encipherment"},
	})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(s.opts.StateDir, "xds-tls")
	return dir, s.mountSecret(secret, func(secret *corev1.Secret) error {
		files := map[string][]byte{}
		for _, name := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
			files[filepath.Join(dir, name)] = secret.Data[name]
		}
		return writeFiles(files)
	})
}

// clientBootstrap is the default grpc-bootstrap.json: a client of identity
// spiffe://cluster.local/ns/default/sa/sandbox-client, issued by the mesh CA for it alone.
func (s *Sandbox) clientBootstrap(ctx context.Context) ([]byte, error) {
	secret, err := s.issueCertificate(ctx, clientNamespace, clientServiceAccount, map[string]any{
		"uris":       []any{zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, clientNamespace, clientServiceAccount)},
		"privateKey": map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
		"usages":     []any{"client auth", "digital signature", "key encipherment"},
	})
	if err != nil {
		return nil, err
	}
	files := IdentityFiles(filepath.Join(s.opts.StateDir, clientServiceAccount))
	err = s.mountSecret(secret, func(secret *corev1.Secret) error {
		return writeFiles(map[string][]byte{
			files.Cert: secret.Data[corev1.TLSCertKey], files.Key: secret.Data[corev1.TLSPrivateKeyKey], files.CA: secret.Data["ca.crt"],
		})
	})
	nodeID := envoy.NodeID(envoy.FlavourGRPC, "127.0.0.1", clientServiceAccount, clientNamespace)
	return testmesh.Bootstrap(XDSAddr, nodeID, testmesh.WithMutualTLS(files, clientNamespace, clientServiceAccount)), err
}
