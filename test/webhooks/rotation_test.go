package webhooks_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// A renewed serving certificate is served to new TLS connections without a restart, whether its
// files are replaced one by one or, as the kubelet updates a Secret volume, all at once through the
// ..data symlink; the API server, trusting the old and new certificates during the rotation (what
// cert-manager's CA injector arranges), keeps reaching the webhooks.
func TestServingCertificateRotation(t *testing.T) {
	dir := env.Webhooks.LocalServingCertDir
	addr := net.JoinHostPort(env.Webhooks.LocalServingHost, strconv.Itoa(env.Webhooks.LocalServingPort))
	first, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if served := servedCertificate(t, addr); !bytes.Equal(served, pemBlock(t, first)) {
		t.Fatal("the webhook server does not serve the certificate of its directory")
	}
	second, third := newServingCertificate(t), newServingCertificate(t)
	trustOnly(t, bytes.Join([][]byte{first, second.cert, third.cert}, nil))

	// The files replaced one by one (key first, each atomically): between the two writes the pair
	// does not match, and the server keeps the old one.
	writeAtomically(t, filepath.Join(dir, "tls.key"), second.key)
	writeAtomically(t, filepath.Join(dir, "tls.crt"), second.cert)
	waitServed(t, addr, second, "the files were replaced one by one")
	admitted(t)

	// The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> a directory of the version; a
	// renewal writes a new directory and swaps ..data.
	writeVersion(t, dir, "..v1", second)
	symlinkAtomically(t, "..v1", filepath.Join(dir, "..data"))
	for _, f := range []string{"tls.crt", "tls.key"} {
		symlinkAtomically(t, filepath.Join("..data", f), filepath.Join(dir, f))
	}
	writeVersion(t, dir, "..v2", third)
	symlinkAtomically(t, "..v2", filepath.Join(dir, "..data"))
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, third, "..data was swapped")
	admitted(t)
}

type servingCert struct{ cert, key, der []byte }

// waitServed waits until new TLS connections get want and logs how long that took.
func waitServed(t *testing.T, addr string, want servingCert, after string) {
	t.Helper()
	changed := time.Now()
	for !bytes.Equal(servedCertificate(t, addr), want.der) {
		if time.Since(changed) > 20*time.Second {
			t.Fatalf("new TLS connections still get the old certificate 20s after %s", after)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("new TLS connections got the renewed certificate %s after %s", time.Since(changed).Round(time.Millisecond), after)
}

// admitted checks that the API server reaches the webhooks: a dry-run create passes.
func admitted(t *testing.T) {
	t.Helper()
	zt := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "after-rotation"}}
	zt.Spec.MTLS.Mode = meshv1alpha1.MTLSDisable
	testmesh.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		return kube.Create(context.Background(), zt.DeepCopy(), client.DryRunAll)
	})
}

func writeVersion(t *testing.T, dir, version string, c servingCert) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, version), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": c.cert, "tls.key": c.key} {
		if err := os.WriteFile(filepath.Join(dir, version, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func symlinkAtomically(t *testing.T, target, path string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedCertificate is the leaf certificate (DER) a new TLS connection to addr gets.
func servedCertificate(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only the presented certificate is read
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// newServingCertificate is a fresh self-signed serving certificate for the webhook server's address.
func newServingCertificate(t *testing.T) servingCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sluice-webhook-renewed"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP(env.Webhooks.LocalServingHost)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return servingCert{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		der:  der,
	}
}

// trustOnly sets the CA bundle of every installed webhook to bundle.
func trustOnly(t *testing.T, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	validating := &admissionv1.ValidatingWebhookConfigurationList{}
	mutating := &admissionv1.MutatingWebhookConfigurationList{}
	if err := kube.List(ctx, validating); err != nil {
		t.Fatal(err)
	}
	if err := kube.List(ctx, mutating); err != nil {
		t.Fatal(err)
	}
	for i := range validating.Items {
		c := &validating.Items[i]
		for j := range c.Webhooks {
			c.Webhooks[j].ClientConfig.CABundle = bundle
		}
		if err := kube.Update(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range mutating.Items {
		c := &mutating.Items[i]
		for j := range c.Webhooks {
			c.Webhooks[j].ClientConfig.CABundle = bundle
		}
		if err := kube.Update(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func pemBlock(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal(fmt.Errorf("no PEM block"))
	}
	return b.Bytes
}
