package mtls_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

var (
	caOnce sync.Once
	ca     *testcertmanager.CA
	caErr  error
)

// meshCA is the CA ClusterIssuer every test issues from.
func meshCA(t *testing.T) *testcertmanager.CA {
	t.Helper()
	caOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ca, caErr = cm.CreateCA(ctx, "mesh-ca")
	})
	if caErr != nil {
		t.Fatal(caErr)
	}
	return ca
}

// STRICT: the proxyless client reaches the server over mutual TLS with both SPIFFE identities
// verified, and a plain-text client dialling the pod IP is refused.
func TestStrict(t *testing.T) {
	m := newMesh(t, "mtls-strict", meshv1alpha1.MTLSStrict, "192.0.2.111")

	peers := m.callThroughMesh(t, 20)
	if want := zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, m.ns, "client"); peers[want] != 20 {
		t.Fatalf("the server should have seen the client certificate %s on all 20 calls: %v", want, peers)
	}
	t.Logf("20 calls over mTLS; the server saw the client as %v", peers)

	err := m.server.plainCall()
	if err == nil {
		t.Fatal("a plain-text client was served by a STRICT server")
	}
	t.Logf("a plain-text client is refused: %v", err)
}

// PERMISSIVE: grpc-go cannot take TLS and plain text on one listener, so a PERMISSIVE proxyless
// server serves plain text (docs/xds.md): both the xDS client and a plain one are answered.
func TestPermissive(t *testing.T) {
	m := newMesh(t, "mtls-permissive", meshv1alpha1.MTLSPermissive, "192.0.2.112")
	peers := m.callThroughMesh(t, 10)
	if peers[""] != 10 {
		t.Fatalf("want 10 plain-text calls through the mesh: %v", peers)
	}
	if err := m.server.plainCall(); err != nil {
		t.Fatalf("a plain-text client should be served by a PERMISSIVE server: %v", err)
	}
}

// DISABLE: plain text, as without a ZeroTrust.
func TestDisable(t *testing.T) {
	m := newMesh(t, "mtls-disable", meshv1alpha1.MTLSDisable, "192.0.2.113")
	if peers := m.callThroughMesh(t, 10); peers[""] != 10 {
		t.Fatalf("want 10 plain-text calls through the mesh: %v", peers)
	}
	if err := m.server.plainCall(); err != nil {
		t.Fatalf("a plain-text client should be served: %v", err)
	}
}

// mesh is one namespace with a ZeroTrust, a ledger server (service account ledger) behind a
// Service, and certificates for it and for a client (service account client).
type mesh struct {
	ns                       string
	server                   *server
	clientFiles, serverFiles testmesh.CertificateFiles
}

func newMesh(t *testing.T, ns string, mode meshv1alpha1.MTLSMode, podIP string) *mesh {
	t.Helper()
	if podnetErr != nil {
		t.Skip(podnetErr)
	}
	ctx := context.Background()
	issuer := meshCA(t)
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	zt := &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mesh"},
		Spec: meshv1alpha1.ZeroTrustSpec{
			Selector: &metav1.LabelSelector{},
			MTLS:     meshv1alpha1.MutualTLS{Mode: mode},
			Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: issuer.IssuerName}},
		},
	}
	must(t, env.Client.Create(ctx, zt))

	m := &mesh{ns: ns, clientFiles: issue(t, issuer, ns, "client"), serverFiles: issue(t, issuer, ns, "ledger")}
	m.server = startServer(t, ns, "ledger-0", podIP, m.serverFiles)
	createService(t, ns, "ledger", m.server)
	start := time.Now()
	m.server.waitMode(t, connectivity.ServingModeServing, 20*time.Second)
	t.Logf("%s: server SERVING %v after its EndpointSlice", mode, time.Since(start).Round(time.Millisecond))
	return m
}

// issue has cert-manager issue the SPIFFE certificate (Certificate and Secret
// test-identity-<sa>) of a service account and writes its Secret's tls.crt, tls.key and ca.crt to
// files, as the injector would mount them (writeSecretVolume).
func issue(t *testing.T, issuer *testcertmanager.CA, ns, sa string) testmesh.CertificateFiles {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	crt := &unstructuredCert{ns: ns, name: "test-identity-" + sa, spec: map[string]any{
		"secretName": "test-identity-" + sa,
		"uris":       []any{zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, ns, sa)},
		"duration":   "1h",
		"privateKey": map[string]any{"algorithm": "ECDSA", "size": int64(256)},
		"usages":     []any{"digital signature", "key encipherment", "server auth", "client auth"},
		"issuerRef":  issuer.IssuerRef(),
	}}
	start := time.Now()
	must(t, env.Client.Create(ctx, crt.object()))
	secret, err := cm.WaitCertificate(ctx, ns, crt.name)
	must(t, err)
	t.Logf("certificate for %s/%s issued in %v", ns, sa, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	files := testmesh.CertificateFiles{
		Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt"),
		Refresh: time.Second,
	}
	must(t, writeSecretVolume(dir, secret))
	return files
}

// writeSecretVolume writes a Secret's data into dir as the kubelet updates a Secret volume.
func writeSecretVolume(dir string, secret *corev1.Secret) error { return writeVolume(dir, secret.Data) }

// writeVolume writes the files of a Secret or ConfigMap volume into dir as the kubelet does
// (pkg/volume/util/atomic_writer.go): the files go into a new timestamped directory, the symlink
// ..data is swapped to it with a rename, and each key is a symlink to ..data/<key>, so a reader
// sees all the old files or all the new ones.
func writeVolume(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(ts, k), v, 0o600); err != nil {
			return err
		}
	}
	data, tmp := filepath.Join(dir, "..data"), filepath.Join(dir, "..data_tmp")
	old, _ := os.Readlink(data)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return err
	}
	for k := range files {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
			return err
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// server is an xDS-enabled gRPC server with xDS credentials (plain text when Sluice sends no
// security config) on its pod IP, answering with the SPIFFE ID of the caller's certificate.
type server struct {
	testgrpc.UnimplementedTestServiceServer
	pod, ip string
	port    int32
	modes   chan connectivity.ServingMode
}

func (s *server) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	// The serial of the caller's certificate, for rotation_test.go.
	_ = grpc.SetTrailer(ctx, metadata.Pairs(peerSerialKey, peerSerial(ctx)))
	return &testgrpc.SimpleResponse{Hostname: s.pod, ServerId: peerSPIFFEID(ctx)}, nil
}

// peerSPIFFEID is the URI SAN of the peer's certificate, "" without TLS.
func peerSPIFFEID(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.PeerCertificates) == 0 {
		return ""
	}
	return uriOf(tlsInfo.State.PeerCertificates[0])
}

func uriOf(c *x509.Certificate) string {
	if len(c.URIs) == 0 {
		return "(no URI SAN)"
	}
	return c.URIs[0].String()
}

func startServer(t *testing.T, ns, pod, ip string, files testmesh.CertificateFiles) *server {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	must(t, err)
	s := &server{pod: pod, ip: ip, port: int32(lis.Addr().(*net.TCPAddr).Port), modes: make(chan connectivity.ServingMode, 16)}
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	must(t, err)
	bootstrap := testmesh.Bootstrap(xdsAddr, envoy.NodeID(envoy.FlavourGRPC, ip, pod, ns),
		testmesh.WithServerListenerTemplate(), testmesh.WithCertificates(files))
	gs, err := xds.NewGRPCServer(grpc.Creds(creds), xds.BootstrapContentsForTesting(bootstrap),
		xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) {
			if args.Err != nil {
				t.Logf("server %s: %s (%v)", s.addr(), args.Mode, args.Err)
			}
			select {
			case s.modes <- args.Mode:
			default:
			}
		}))
	must(t, err)
	testgrpc.RegisterTestServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

func (s *server) addr() string { return net.JoinHostPort(s.ip, strconv.Itoa(int(s.port))) }

func (s *server) waitMode(t *testing.T, want connectivity.ServingMode, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.modes:
			if m == want {
				return
			}
		case <-deadline:
			t.Fatalf("server %s did not become %s within %s", s.addr(), want, timeout)
		}
	}
}

// plainCall calls the server's pod IP with a plain-text client that knows nothing of xDS.
func (s *server) plainCall() error {
	conn, err := grpc.NewClient(s.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil && status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		return err
	}
	return err
}

// callThroughMesh makes n calls with a proxyless client (service account client, xDS credentials
// with a plain-text fallback) to xds:///ledger.<ns>.svc.cluster.local:8080 and counts the
// SPIFFE IDs the server saw ("" for plain text). It checks that the server presented the ledger
// identity whenever TLS was used.
func (m *mesh) callThroughMesh(t *testing.T, n int) map[string]int {
	t.Helper()
	conn, err := m.dial()
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := testgrpc.NewTestServiceClient(conn)
	seen := map[string]int{}
	start := time.Now()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var p peer.Peer
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true), grpc.Peer(&p))
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			if got, want := uriOf(tlsInfo.State.PeerCertificates[0]), zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, m.ns, "ledger"); got != want {
				t.Fatalf("call %d: the server presented %s, want %s", i, got, want)
			}
		}
		seen[resp.GetServerId()]++
	}
	t.Logf("%d calls through the mesh in %v", n, time.Since(start).Round(time.Millisecond))
	return seen
}

// dial is a proxyless client (service account client, its own xDS client, xDS credentials with
// a plain-text fallback) of xds:///ledger.<ns>.svc.cluster.local:8080.
func (m *mesh) dial() (*grpc.ClientConn, error) {
	resolver, err := xds.NewXDSResolverWithConfigForTesting(testmesh.Bootstrap(xdsAddr,
		envoy.NodeID(envoy.FlavourGRPC, "192.0.2.110", "client-0", m.ns), testmesh.WithCertificates(m.clientFiles)))
	if err != nil {
		return nil, err
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("xds:///ledger."+m.ns+".svc.cluster.local:8080", grpc.WithTransportCredentials(creds), grpc.WithResolvers(resolver))
}

// createService creates the Service (port 8080, grpc), the server's Pod with its service account
// and the EndpointSlice, as Kubernetes would for a running pod.
func createService(t *testing.T, ns, name string, s *server) {
	t.Helper()
	ctx := context.Background()
	must(t, env.Client.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "grpc", Port: 8080, AppProtocol: ptr.To("grpc")}},
		},
	}))
	// The pod and its service account may exist already (the pod needed its identity first).
	mustOrExists(t, env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}))
	mustOrExists(t, env.Client.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.pod, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			ServiceAccountName: name,
			Containers:         []corev1.Container{{Name: "app", Image: "sluice/demo-app"}},
		},
	}))
	must(t, env.Client.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(s.port)}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{s.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: s.pod},
		}},
	}))
}

func mustOrExists(t *testing.T, err error) {
	t.Helper()
	if !apierrors.IsAlreadyExists(err) {
		must(t, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// unstructuredCert is a cert-manager Certificate (the product's module does not import
// cert-manager).
type unstructuredCert struct {
	ns, name string
	spec     map[string]any
}

func (c *unstructuredCert) object() *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": c.spec}}
	obj.SetGroupVersionKind(testcertmanager.CertificateGVK)
	obj.SetNamespace(c.ns)
	obj.SetName(c.name)
	return obj
}
