package xdsauth_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

const timeout = 15 * time.Second

// refused checks that the stream ended with PermissionDenied saying says, and that the refusal
// counted under reason.
func refused(t *testing.T, a *adsStream, says, reason string, before float64) {
	t.Helper()
	_, err := a.next(timeout)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), says) {
		t.Fatalf("got %v; want PermissionDenied saying %q", err, says)
	}
	t.Logf("refused: %s", status.Convert(err).Message())
	if got := counter(t, "sluice_xds_refused_streams_total", "reason", reason); got != before+1 {
		t.Errorf("sluice_xds_refused_streams_total{reason=%q} is %v, want %v", reason, got, before+1)
	}
}

// A client that presents no certificate does not get past the TLS handshake.
func TestClientWithoutCertificateIsRefused(t *testing.T) {
	_, secrets := workloads(t, "nocert", "web")
	before := counter(t, "sluice_xds_tls_handshakes_total", "result", "failed")
	// With TLS 1.3 the client's side of the handshake ends first: the server's refusal reaches it
	// when it opens the stream or when it reads.
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, nil)).StreamAggregatedResources(ctx)
	if err == nil {
		_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: node("nocert", "web")})
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v; want the connection refused (Unavailable)", err)
	}
	t.Logf("refused: %v", err)
	// The server counts the handshake once it has sent its alert: maybe after the client read it.
	testmesh.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := counter(t, "sluice_xds_tls_handshakes_total", "result", "failed"); got <= before {
			return fmt.Errorf("failed handshakes: %v, want more than %v", got, before)
		}
		return nil
	})
	// The same client with its certificate is served.
	ok := openADS(t, dial(t, secrets["web"]), node(namespaceOf(secrets["web"]), "web"))
	must(t, ok.ask(resource.ClusterType, nil))
	if _, err := ok.next(timeout); err != nil {
		t.Fatalf("with its certificate: %v", err)
	}
}

func namespaceOf(s *corev1.Secret) string { return s.Namespace }

// A node that claims another service account or namespace than its certificate is refused.
func TestNodeClaimingAnotherIdentityIsDenied(t *testing.T) {
	ns, secrets := workloads(t, "claims", "web", "api")
	for name, n := range map[string]struct {
		ns, sa, says string
	}{
		"service account": {ns, "api", `sluice.dev/service-account is "api" but the client certificate is ` + spiffeID(ns, "web")},
		"namespace":       {"bank", "web", `sluice.dev/namespace is "bank" but the client certificate is ` + spiffeID(ns, "web")},
	} {
		t.Run(name, func(t *testing.T) {
			before := counter(t, "sluice_xds_refused_streams_total", "reason", "node")
			a := openADS(t, dial(t, secrets["web"]), node(n.ns, n.sa))
			must(t, a.ask(resource.ClusterType, nil))
			refused(t, a, n.says, "node", before)
		})
	}
}

// A node that asks for the secret of another namespace's identity is refused.
func TestAnotherNamespacesSecretIsDenied(t *testing.T) {
	ns, secrets := workloads(t, "mine", "web")
	other, _ := workloads(t, "theirs", "ledger")
	before := counter(t, "sluice_xds_refused_streams_total", "reason", "secret")
	a := openADS(t, dial(t, secrets["web"]), node(ns, "web"))
	must(t, a.ask(resource.SecretType, nil, spiffeID(other, "ledger")))
	refused(t, a, `SDS secret "`+spiffeID(other, "ledger")+`" is not this node's`, "secret", before)

	// Every secret (the wildcard) is refused too.
	before++
	w := openADS(t, dial(t, secrets["web"]), node(ns, "web"))
	must(t, w.ask(resource.SecretType, nil))
	refused(t, w, "must name the secrets", "secret", before)
}

// The legitimate node gets its certificate, as default and by SPIFFE ID, and the trust bundle;
// when cert-manager renews its certificate, the new one is pushed on the open stream.
func TestNodeGetsItsOwnSecretAndTheTrustBundle(t *testing.T) {
	ns, secrets := workloads(t, "legit", "web")
	web := secrets["web"]
	bundle := envoy.TrustBundleSecret(zerotrust.DefaultTrustDomain)
	names := []string{envoy.WorkloadSecret, spiffeID(ns, "web"), bundle}
	a := openADS(t, dial(t, web), node(ns, "web"))
	start := time.Now()
	must(t, a.ask(resource.SecretType, nil, names...))
	// The certificate was issued a moment ago: the operator may answer before it has translated the
	// Secret, and push the secrets when it has, as Envoy waits for them.
	got := map[string]*tlsv3.Secret{}
	var r *discovery.DiscoveryResponse
	for len(got) < len(names) {
		var err error
		r, err = a.next(timeout)
		must(t, err)
		for name, s := range secretsOf(t, r) {
			got[name] = s
		}
		must(t, a.ask(resource.SecretType, r, names...))
	}
	t.Logf("the node had its secrets %s after it asked", time.Since(start).Round(time.Microsecond))
	for _, name := range []string{envoy.WorkloadSecret, spiffeID(ns, "web")} {
		tc := got[name].GetTlsCertificate()
		if !bytes.Equal(tc.GetCertificateChain().GetInlineBytes(), web.Data[corev1.TLSCertKey]) ||
			!bytes.Equal(tc.GetPrivateKey().GetInlineBytes(), web.Data[corev1.TLSPrivateKeyKey]) {
			t.Errorf("secret %q does not hold web's certificate and key", name)
		}
	}
	if cas := got[bundle].GetValidationContext().GetTrustedCa().GetInlineBytes(); !bytes.Contains(cas, bytes.TrimSpace(ca.Bundle)) {
		t.Errorf("the trust bundle does not hold the mesh CA:\n%s", cas)
	}

	// Renewal: the new certificate reaches the stream.
	trigger := time.Now()
	renewed, err := cm.Renew(context.Background(), ns, zerotrust.CertificateName("web"))
	must(t, err)
	issued := time.Now()
	for {
		r, err = a.next(timeout)
		must(t, err)
		def := secretsOf(t, r)[envoy.WorkloadSecret]
		must(t, a.ask(resource.SecretType, r, names...))
		if bytes.Equal(def.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), renewed.Data[corev1.TLSCertKey]) {
			break
		}
	}
	t.Logf("renewed certificate pushed %s after the renewal was triggered, %s after cert-manager reported it issued",
		time.Since(trigger).Round(time.Millisecond), time.Since(issued).Round(time.Millisecond))
}

// cert-manager renews the xDS server's certificate; once the files change, new connections get
// the new certificate, with no restart, while the connection opened before keeps its stream.
func TestRenewedServerCertificateServedToNewConnections(t *testing.T) {
	ns, secrets := workloads(t, "rotate", "web")
	web := secrets["web"]
	before := servedCertificate(t, web)
	open := openADS(t, dial(t, web), node(ns, "web"))
	must(t, open.ask(resource.ClusterType, nil))
	first, err := open.next(timeout)
	must(t, err)

	trigger := time.Now()
	renewed, err := cm.Renew(context.Background(), operatorNamespace, serverCertificate)
	must(t, err)
	issued := time.Now()
	want, err := testcertmanager.ParseCertificate(renewed.Data[corev1.TLSCertKey])
	must(t, err)
	if want.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the renewal kept the serial number")
	}
	must(t, writeTLSDir(renewed))
	written := time.Now()
	for {
		got := servedCertificate(t, web)
		if got.SerialNumber.Cmp(want.SerialNumber) == 0 {
			break
		}
		if time.Since(written) > timeout {
			t.Fatalf("new connections still get serial %v, %s after the files changed", got.SerialNumber, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("cert-manager renewed the server certificate in %s; new connections got it %s after the files changed",
		issued.Sub(trigger).Round(time.Millisecond), time.Since(written).Round(time.Microsecond))

	// The stream opened before the renewal goes on.
	must(t, open.ask(resource.ClusterType, first))
	select {
	case err := <-open.ended:
		t.Fatalf("the stream opened before the renewal ended: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}
