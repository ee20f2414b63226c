package install_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-mesh/sluice/internal/testcertmanager"
)

// TestCertificatesAreIssued applies config/default's Issuer and Certificates with the real
// cert-manager controllers and a CA ClusterIssuer named mesh-ca, as docs/install.md asks: both
// Secrets the manager mounts are issued, each for its Service's DNS name; the xDS server's is
// signed by the mesh's CA and carries it as ca.crt, which the server checks proxies against.
func TestCertificatesAreIssued(t *testing.T) {
	needAPIServer(t)
	ensureNamespace(t)
	cm := testcertmanager.Start(t, env, testcertmanager.Options{MinimumBackoff: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ca, err := cm.CreateCA(ctx, "mesh-ca")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Issuer", "Certificate"} {
		for _, obj := range ofKind(kind) {
			if err := env.Client.Apply(ctx, applyConfig(obj.DeepCopy()), fieldOwner, forceOwnership); err != nil {
				t.Fatalf("applying %s %s: %v", kind, obj.GetName(), err)
			}
		}
	}

	webhook := issued(ctx, t, cm, "sluice-serving-cert")
	verify(t, webhook, webhook.Data["ca.crt"], webhookService+"."+installNamespace+".svc")

	xds := issued(ctx, t, cm, "sluice-xds-serving-cert")
	if !bytes.Equal(xds.Data["ca.crt"], ca.Bundle) {
		t.Error("the xDS server's ca.crt is not the mesh's CA: proxies' certificates would not verify")
	}
	verify(t, xds, ca.Bundle, xdsService+"."+installNamespace+".svc")
}

// issued waits for a Certificate of the install and returns its Secret, checking that the Secret
// is the one the manager mounts and has the three files the servers read.
func issued(ctx context.Context, t *testing.T, cm *testcertmanager.CertManager, name string) *corev1.Secret {
	t.Helper()
	secret, err := cm.WaitCertificate(ctx, installNamespace, name)
	if err != nil {
		t.Fatal(err)
	}
	crt := find(t, "Certificate", installNamespace, name)
	if want, _, _ := unstructured.NestedString(crt.Object, "spec", "secretName"); secret.Name != want {
		t.Errorf("Certificate %s wrote Secret %s, want %s", name, secret.Name, want)
	}
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		if len(secret.Data[key]) == 0 {
			t.Errorf("Secret %s has no %s", secret.Name, key)
		}
	}
	return secret
}

// verify checks the Secret's certificate against a CA for a server name.
func verify(t *testing.T, secret *corev1.Secret, caPEM []byte, host string) {
	t.Helper()
	leaf, err := testcertmanager.ParseCertificate(secret.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("Secret %s: no CA certificate to verify with", secret.Name)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
		t.Errorf("Secret %s's certificate does not serve %s: %v", secret.Name, host, err)
	}
}
