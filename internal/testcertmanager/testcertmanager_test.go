package testcertmanager_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the tests skip themselves
	}
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const (
	namespace = "test"
	spiffeID  = "spiffe://cluster.local/ns/test/sa/default"
)

// TestIssuance bootstraps a CA and has it issue a SPIFFE workload certificate both ways issue 5
// may choose: a Certificate (cert-manager keeps the key in a Secret) and a CertificateRequest
// made from a CSR whose key never leaves this process.
func TestIssuance(t *testing.T) {
	start := time.Now()
	cm := testcertmanager.Start(t, env, testcertmanager.Options{})
	t.Logf("CRDs installed and controllers running in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()

	start = time.Now()
	ca, err := cm.CreateCA(ctx, "sluice-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CA ClusterIssuer %s Ready in %v", ca.IssuerName, time.Since(start).Round(time.Millisecond))
	if !ca.Certificate.IsCA || ca.Certificate.Subject.CommonName != "sluice-test-ca" {
		t.Fatalf("CA certificate: IsCA %v, subject %s; want a CA named sluice-test-ca", ca.Certificate.IsCA, ca.Certificate.Subject)
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("Certificate", func(t *testing.T) {
		crt := object(testcertmanager.CertificateGVK, "workload", map[string]any{
			"secretName":  "workload-tls",
			"uris":        []any{spiffeID},
			"duration":    "1h",
			"renewBefore": "30m",
			"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256)},
			"usages":      []any{"digital signature", "key encipherment", "server auth", "client auth"},
			"issuerRef":   ca.IssuerRef(),
		})
		start := time.Now()
		if err := env.Client.Create(ctx, crt); err != nil {
			t.Fatal(err)
		}
		secret, err := cm.WaitCertificate(ctx, namespace, "workload")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Certificate Ready in %v", time.Since(start).Round(time.Millisecond))

		leaf := checkLeaf(t, ca, secret.Data[corev1.TLSCertKey])
		if got := string(secret.Data["ca.crt"]); got != string(ca.Bundle) {
			t.Errorf("Secret ca.crt is not the CA's certificate:\n%s", got)
		}
		key, err := parseKey(secret.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			t.Fatalf("Secret tls.key: %v", err)
		}
		if !key.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
			t.Error("tls.key does not match tls.crt")
		}

		// renewBefore 30m: cert-manager plans the renewal half an hour before expiry.
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(testcertmanager.CertificateGVK)
		if err := env.Client.Get(ctx, clientKey("workload"), got); err != nil {
			t.Fatal(err)
		}
		renewal, _, _ := unstructured.NestedString(got.Object, "status", "renewalTime")
		renewalTime, err := time.Parse(time.RFC3339, renewal)
		if err != nil {
			t.Fatalf("status.renewalTime %q: %v", renewal, err)
		}
		if want := leaf.NotAfter.Add(-30 * time.Minute); renewalTime.Sub(want).Abs() > time.Second {
			t.Errorf("status.renewalTime %v, want 30m before notAfter %v", renewalTime, leaf.NotAfter)
		}

		// Renew, as cmctl renew does: a new certificate and, with the default rotationPolicy
		// Always, a new key, in the same Secret.
		start = time.Now()
		renewed, err := cm.Renew(ctx, namespace, "workload")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Certificate renewed in %v", time.Since(start).Round(time.Millisecond))
		newLeaf := checkLeaf(t, ca, renewed.Data[corev1.TLSCertKey])
		if newLeaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			t.Errorf("the renewed certificate has the old serial %x", leaf.SerialNumber)
		}
		newKey, err := parseKey(renewed.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			t.Fatalf("renewed Secret tls.key: %v", err)
		}
		if !newKey.Public().(*ecdsa.PublicKey).Equal(newLeaf.PublicKey) || newKey.Equal(key) {
			t.Error("the renewed tls.key does not match the new tls.crt, or is the old key")
		}
		if err := env.Client.Get(ctx, clientKey("workload"), got); err != nil {
			t.Fatal(err)
		}
		if revision, _, _ := unstructured.NestedInt64(got.Object, "status", "revision"); revision != 2 {
			t.Errorf("status.revision %d after one renewal, want 2", revision)
		}
	})

	t.Run("CertificateRequest", func(t *testing.T) {
		// The key stays in memory; only the CSR goes to the API server.
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := url.Parse(spiffeID)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{}, URIs: []*url.URL{id},
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		cr := object(testcertmanager.CertificateRequestGVK, "workload-inmemory", map[string]any{
			"request":   base64.StdEncoding.EncodeToString(csr), // a []byte field: base64 in JSON
			"duration":  "1h",
			"usages":    []any{"digital signature", "key encipherment", "server auth", "client auth"},
			"issuerRef": ca.IssuerRef(),
		})
		start := time.Now()
		if err := env.Client.Create(ctx, cr); err != nil {
			t.Fatal(err)
		}
		certPEM, caPEM, err := cm.WaitCertificateRequest(ctx, namespace, "workload-inmemory")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("CertificateRequest issued in %v", time.Since(start).Round(time.Millisecond))

		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(testcertmanager.CertificateRequestGVK)
		if err := env.Client.Get(ctx, clientKey("workload-inmemory"), got); err != nil {
			t.Fatal(err)
		}
		if !hasCondition(got, "Approved", "True") {
			t.Errorf("CertificateRequest not Approved: %v", got.Object["status"])
		}
		leaf := checkLeaf(t, ca, certPEM)
		if !key.PublicKey.Equal(leaf.PublicKey) {
			t.Error("the certificate is not for the CSR's key")
		}
		if string(caPEM) != string(ca.Bundle) {
			t.Errorf("status.ca is not the CA's certificate:\n%s", caPEM)
		}
	})
}

// checkLeaf parses a PEM chain's leaf and checks it is the SPIFFE workload certificate: the URI
// SAN, about an hour long, signed by the CA for server and client auth.
func checkLeaf(t *testing.T, ca *testcertmanager.CA, chain []byte) *x509.Certificate {
	t.Helper()
	leaf, err := testcertmanager.ParseCertificate(chain)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID {
		t.Errorf("URI SANs %v, want [%s]", leaf.URIs, spiffeID)
	}
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("unexpected SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("validity %v, want 1h", d)
	}
	if leaf.IsCA {
		t.Error("the workload certificate is a CA")
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Errorf("the certificate does not verify against the CA: %v", err)
	}
	return leaf
}

func object(gvk schema.GroupVersionKind, name string, spec map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetGroupVersionKind(gvk)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	return obj
}

func clientKey(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

func hasCondition(obj *unstructured.Unstructured, condType, status string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == condType {
			return m["status"] == status
		}
	}
	return false
}

// parseKey parses the PEM private key cert-manager wrote (PKCS#1 for RSA, SEC 1 for ECDSA by
// default, or PKCS#8).
func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want ECDSA", key)
	}
	return ec, nil
}
