package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/internal/testpki"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

const (
	webID = "spiffe://cluster.local/ns/shop/sa/web"
	apiID = "spiffe://cluster.local/ns/shop/sa/api"
)

// pki is a mesh CA with the xDS server's certificate in a TLS directory.
type pki struct {
	ca  *testpki.CA
	dir string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{ca: testpki.NewCA(t, "mesh"), dir: t.TempDir()}
	testpki.WriteTLSDir(t, p.dir, p.ca.Issue(t, nil, nil, net.ParseIP("127.0.0.1")), p.ca.PEM)
	return p
}

// startMTLSServer runs a Server whose ServeMTLS serves the TLS directory of p.
func startMTLSServer(t *testing.T, p *pki) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Registerer: reg, Logger: funcr.New(func(prefix, args string) {}, funcr.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	lis := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeMTLS(ctx, lis, p.dir) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMTLS: %v", err)
		}
	})
	return &testServer{Server: s, reg: reg, addr: lis.Addr().String()}
}

// dialTLS connects with the client certificate (none when nil) and trusts the mesh CA.
func (p *pki) dialTLS(t *testing.T, addr string, cert *testpki.Leaf) *grpc.ClientConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	conf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c := cert.TLS(t)
		conf.Certificates = []tls.Certificate{c}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// workloadNode is the node of a pod of namespace/serviceAccount, as docs/xds.md has it.
func workloadNode(f envoy.Flavour, namespace, serviceAccount string) *corev3.Node {
	pod := serviceAccount + "-1"
	return &corev3.Node{
		Id: envoy.NodeID(f, "10.0.0.1", pod, namespace),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.NodeMetadataFlavour:        structpb.NewStringValue(string(f)),
			envoy.NodeMetadataNamespace:      structpb.NewStringValue(namespace),
			envoy.NodeMetadataPod:            structpb.NewStringValue(pod),
			envoy.NodeMetadataServiceAccount: structpb.NewStringValue(serviceAccount),
		}},
	}
}

// secretsMesh is baseMesh with the certificates of web and api and the trust bundle.
func secretsMesh(t *testing.T) *envoy.Snapshot {
	snap := baseMesh().snapshot(t)
	snap.Secrets = map[string]*tlsv3.Secret{}
	for _, id := range []string{webID, apiID} {
		snap.Secrets[id] = &tlsv3.Secret{Name: id, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "chain of " + id}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "key of " + id}},
		}}}
	}
	bundle := envoy.TrustBundleSecret("cluster.local")
	snap.Secrets[bundle] = &tlsv3.Secret{Name: bundle, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "roots"}},
	}}}
	return snap
}

func (ts *testServer) publishSecrets(t *testing.T) {
	t.Helper()
	if err := ts.Publish(secretsMesh(t), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// ended waits for the stream's end and checks its status.
func ended(t *testing.T, errs <-chan error, code codes.Code, says string) {
	t.Helper()
	select {
	case err := <-errs:
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), says) {
			t.Fatalf("stream ended with %v; want %s saying %q", err, code, says)
		}
	case <-time.After(wait):
		t.Fatalf("the stream did not end; want %s", code)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metricOf(t, reg, name, labels).GetCounter().GetValue()
}

// A client without a certificate, or with one of another CA, does not get through the handshake.
func TestMTLSRequiresAClientCertificateOfTheCA(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	ts.publishSecrets(t)
	other := testpki.NewCA(t, "other").Issue(t, []string{webID}, nil)
	for name, cert := range map[string]*testpki.Leaf{"no certificate": nil, "another CA": &other} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			st, err := discovery.NewAggregatedDiscoveryServiceClient(p.dialTLS(t, ts.addr, cert)).StreamAggregatedResources(ctx)
			if err == nil {
				_ = st.Send(&discovery.DiscoveryRequest{Node: workloadNode(envoy.FlavourEnvoy, "shop", "web"), TypeUrl: resource.ClusterType})
				_, err = st.Recv()
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v; want the connection refused (Unavailable)", err)
			}
		})
	}
	if got := counterValue(t, ts.reg, "sluice_xds_tls_handshakes_total", map[string]string{"result": "failed"}); got < 2 {
		t.Errorf("failed handshakes counted: %v, want at least 2", got)
	}
}

// A certificate must carry exactly one workload SPIFFE ID.
func TestMTLSRefusesCertificatesWithoutOneWorkloadID(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	ts.publishSecrets(t)
	for name, uris := range map[string][]string{
		"none":         nil,
		"two":          {webID, apiID},
		"not workload": {"spiffe://cluster.local/ns/shop/pod/web-1"},
	} {
		t.Run(name, func(t *testing.T) {
			leaf := p.ca.Issue(t, uris, nil)
			// Refused as the stream opens, before any request.
			c := newSotwClient(t, p.dialTLS(t, ts.addr, &leaf), workloadNode(envoy.FlavourEnvoy, "shop", "web"))
			ended(t, c.ended, codes.PermissionDenied, "client certificate")
		})
	}
	if got := counterValue(t, ts.reg, "sluice_xds_refused_streams_total", map[string]string{"reason": refusedCertificate}); got != 3 {
		t.Errorf("refused for the certificate: %v, want 3", got)
	}
}

// The node must claim the namespace and service account of its certificate: in its metadata and
// in node.id.
func TestMTLSNodeMustMatchItsCertificate(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	ts.publishSecrets(t)
	web := p.ca.Issue(t, []string{webID}, nil)
	otherNS := workloadNode(envoy.FlavourEnvoy, "shop", "web")
	otherNS.Id = envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.1", "web-1", "bank")
	for name, tc := range map[string]struct {
		node *corev3.Node
		says string
	}{
		"service account": {workloadNode(envoy.FlavourEnvoy, "shop", "api"), `sluice.dev/service-account is "api" but the client certificate is ` + webID},
		"namespace":       {workloadNode(envoy.FlavourGRPC, "bank", "web"), `sluice.dev/namespace is "bank"`},
		"node.id":         {otherNS, `node.id names namespace "bank"`},
	} {
		for _, delta := range []bool{false, true} {
			t.Run(name+map[bool]string{false: " sotw", true: " delta"}[delta], func(t *testing.T) {
				conn := p.dialTLS(t, ts.addr, &web)
				if delta {
					c := newDeltaClient(t, conn, tc.node)
					c.subscribe(resource.ClusterType)
					ended(t, c.ended, codes.PermissionDenied, tc.says)
					return
				}
				c := newSotwClient(t, conn, tc.node)
				c.subscribe(resource.ClusterType)
				ended(t, c.ended, codes.PermissionDenied, tc.says)
			})
		}
	}
	// The matching node is served.
	c := newSotwClient(t, p.dialTLS(t, ts.addr, &web), workloadNode(envoy.FlavourEnvoy, "shop", "web"))
	c.fetch(resource.ClusterType)
	if got := counterValue(t, ts.reg, "sluice_xds_refused_streams_total", map[string]string{"reason": refusedNode}); got != 6 {
		t.Errorf("refused for the node: %v, want 6", got)
	}
}

// A node gets its own certificate (by SPIFFE ID and as default) and trust bundles, and nothing
// else: another identity's secret or every secret ends the stream.
func TestSDSOnlyForTheNodesIdentity(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	ts.publishSecrets(t)
	web := p.ca.Issue(t, []string{webID}, nil)
	node := workloadNode(envoy.FlavourEnvoy, "shop", "web")
	bundle := envoy.TrustBundleSecret("cluster.local")

	t.Run("sotw", func(t *testing.T) {
		c := newSotwClient(t, p.dialTLS(t, ts.addr, &web), node)
		r := c.fetch(resource.SecretType, envoy.WorkloadSecret, webID, bundle)
		got := decode(t, r.GetResources())
		if len(got) != 3 {
			t.Fatalf("got secrets %v, want default, %s and %s", responseNames(t, r), webID, bundle)
		}
		def := got[envoy.WorkloadSecret].(*tlsv3.Secret)
		if chain := def.GetTlsCertificate().GetCertificateChain().GetInlineString(); chain != "chain of "+webID {
			t.Errorf("default secret holds %q, want web's certificate", chain)
		}
		c.subscribe(resource.SecretType, envoy.WorkloadSecret, apiID)
		ended(t, c.ended, codes.PermissionDenied, `SDS secret "`+apiID+`" is not this node's`)
	})
	t.Run("delta", func(t *testing.T) {
		c := newDeltaClient(t, p.dialTLS(t, ts.addr, &web), node)
		c.subscribe(resource.SecretType, envoy.WorkloadSecret, bundle)
		r := c.next(resource.SecretType)
		if got := deltaNames(r); strings.Join(got, ",") != "default,"+bundle {
			t.Fatalf("got secrets %v, want default and %s", got, bundle)
		}
		c.ack(r)
		c.subscribe(resource.SecretType, "default@shop/api")
		ended(t, c.ended, codes.PermissionDenied, `SDS secret "default@shop/api" is not this node's`)
	})
	t.Run("wildcard", func(t *testing.T) {
		c := newSotwClient(t, p.dialTLS(t, ts.addr, &web), node)
		c.subscribe(resource.SecretType)
		ended(t, c.ended, codes.PermissionDenied, "must name the secrets")
		d := newDeltaClient(t, p.dialTLS(t, ts.addr, &web), node)
		d.subscribe(resource.SecretType, "*")
		ended(t, d.ended, codes.PermissionDenied, `SDS secret "*" is not this node's`)
	})
	if got := counterValue(t, ts.reg, "sluice_xds_refused_streams_total", map[string]string{"reason": refusedSecret}); got != 4 {
		t.Errorf("refused for secrets: %v, want 4", got)
	}
}

// On the plain-text port nodes are not authenticated: they get trust bundles, and no private key,
// whatever they claim.
func TestPlaintextServesNoPrivateKeys(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publishSecrets(t)
	bundle := envoy.TrustBundleSecret("cluster.local")
	for _, name := range []string{envoy.WorkloadSecret, apiID} {
		c := newSotwClient(t, ts.dial(t), workloadNode(envoy.FlavourEnvoy, "shop", "api"))
		if got := responseNames(t, c.fetch(resource.SecretType, bundle)); len(got) != 1 || got[0] != bundle {
			t.Fatalf("got %v, want the trust bundle", got)
		}
		c.subscribe(resource.SecretType, bundle, name)
		ended(t, c.ended, codes.PermissionDenied, "the plain-text xDS port serves no private key")
	}
}

// A renewed server certificate is served to the next connection, without a restart.
func TestMTLSServesARenewedCertificate(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	web := p.ca.Issue(t, []string{webID}, nil)
	served := func() *x509.Certificate {
		roots := x509.NewCertPool()
		roots.AddCert(p.ca.Cert)
		conn, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{web.TLS(t)}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0]
	}
	before := served()
	renewed := p.ca.Issue(t, nil, nil, net.ParseIP("127.0.0.1"))
	testpki.WriteTLSDir(t, p.dir, renewed, p.ca.PEM)
	if got := served(); got.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v after the renewal, want %v (was %v)", got.SerialNumber, renewed.Cert.SerialNumber, before.SerialNumber)
	}
	// A broken file keeps the last good certificate.
	if err := os.WriteFile(filepath.Join(p.dir, TLSKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(); got.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Errorf("served serial %v with a broken key file, want the last good %v", got.SerialNumber, renewed.Cert.SerialNumber)
	}
}

// ServeMTLS fails at once when the TLS directory is not usable.
func TestServeMTLSNeedsItsFiles(t *testing.T) {
	s, err := New(Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = s.ServeMTLS(context.Background(), listen(t), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Fatalf("got %v, want an error naming the missing files", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected cancel")
	}
}

// A renewed certificate reaches the node as a new default; a removed identity is removed as
// default over delta, and unsubscribing default works.
func TestDefaultFollowsTheIdentity(t *testing.T) {
	p := newPKI(t)
	ts := startMTLSServer(t, p)
	ts.publishSecrets(t)
	web := p.ca.Issue(t, []string{webID}, nil)
	c := newDeltaClient(t, p.dialTLS(t, ts.addr, &web), workloadNode(envoy.FlavourEnvoy, "shop", "web"))
	c.subscribe(resource.SecretType, envoy.WorkloadSecret)
	c.ack(c.next(resource.SecretType))

	snap := secretsMesh(t)
	snap.Secrets[webID].GetTlsCertificate().CertificateChain = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "renewed"}}
	if err := ts.Publish(snap, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := c.next(resource.SecretType)
	if names := deltaNames(r); len(names) != 1 || names[0] != envoy.WorkloadSecret {
		t.Fatalf("got %v, want default", names)
	}
	sec := &tlsv3.Secret{}
	if err := r.GetResources()[0].GetResource().UnmarshalTo(sec); err != nil {
		t.Fatal(err)
	}
	if got := sec.GetTlsCertificate().GetCertificateChain().GetInlineString(); got != "renewed" {
		t.Errorf("default holds %q, want the renewed certificate", got)
	}
	c.ack(r)

	snap = secretsMesh(t)
	delete(snap.Secrets, webID)
	if err := ts.Publish(snap, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = c.next(resource.SecretType)
	if got := r.GetRemovedResources(); len(got) != 1 || got[0] != envoy.WorkloadSecret {
		t.Fatalf("removed %v, want default", got)
	}
	c.ack(r)
	// Unsubscribe default and subscribe the bundle: the bundle's answer says the request was taken.
	bundle := envoy.TrustBundleSecret("cluster.local")
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.SecretType,
		ResourceNamesSubscribe: []string{bundle}, ResourceNamesUnsubscribe: []string{envoy.WorkloadSecret}})
	if got := deltaNames(c.next(resource.SecretType)); len(got) != 1 || got[0] != bundle {
		t.Fatalf("got %v, want the bundle", got)
	}
	if err := ts.Publish(secretsMesh(t), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-c.responses:
		t.Fatalf("unsubscribed from default, got %v", deltaNames(r))
	case <-time.After(200 * time.Millisecond):
	}
}
