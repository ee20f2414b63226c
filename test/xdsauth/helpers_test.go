package xdsauth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var namespaceSeq atomic.Int64

// workloads creates a namespace under a STRICT ZeroTrust signed by the mesh CA, with one pod per
// service account, and returns the namespace once every identity Secret is issued.
func workloads(t *testing.T, base string, serviceAccounts ...string) (string, map[string]*corev1.Secret) {
	t.Helper()
	ctx := t.Context()
	ns := fmt.Sprintf("%s-%d", base, namespaceSeq.Add(1))
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, sa := range serviceAccounts {
		err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		must(t, env.Client.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa + "-1", Labels: map[string]string{"app": sa}},
			Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: new(bool),
				Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}))
	}
	must(t, env.Client.Create(ctx, &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mesh"},
		Spec: meshv1alpha1.ZeroTrustSpec{
			MTLS:     meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
			Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: ca.IssuerName}},
		},
	}))
	secrets := map[string]*corev1.Secret{}
	for _, sa := range serviceAccounts {
		s, err := cm.WaitCertificate(ctx, ns, zerotrust.CertificateName(sa))
		must(t, err)
		secrets[sa] = s
	}
	return ns, secrets
}

func spiffeID(ns, sa string) string { return zerotrust.SPIFFEID(zerotrust.DefaultTrustDomain, ns, sa) }

// dial connects to the operator's mutual TLS xDS port with the identity Secret's certificate (none
// when nil), trusting the mesh CA.
func dial(t *testing.T, identity *corev1.Secret) *grpc.ClientConn {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if identity != nil {
		cert, err := tls.X509KeyPair(identity.Data[corev1.TLSCertKey], identity.Data[corev1.TLSPrivateKeyKey])
		must(t, err)
		conf.Certificates = []tls.Certificate{cert}
	}
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// node is an Envoy sidecar's node of a pod of ns running as sa (docs/xds.md).
func node(ns, sa string) *corev3.Node {
	return &corev3.Node{
		Id: envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.1", sa+"-1", ns),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.NodeMetadataFlavour:        structpb.NewStringValue(string(envoy.FlavourEnvoy)),
			envoy.NodeMetadataNamespace:      structpb.NewStringValue(ns),
			envoy.NodeMetadataPod:            structpb.NewStringValue(sa + "-1"),
			envoy.NodeMetadataServiceAccount: structpb.NewStringValue(sa),
		}},
	}
}

// adsStream is a raw state-of-the-world ADS stream.
type adsStream struct {
	t         *testing.T
	stream    grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	responses chan *discovery.DiscoveryResponse
	ended     chan error
	node      *corev3.Node
}

func openADS(t *testing.T, conn *grpc.ClientConn, n *corev3.Node) *adsStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(t, err)
	a := &adsStream{t: t, stream: st, node: n, responses: make(chan *discovery.DiscoveryResponse, 16), ended: make(chan error, 1)}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				a.ended <- err
				return
			}
			a.responses <- r
		}
	}()
	return a
}

// ask sends a request for names of typeURL (the node goes on the first request only); an ACK when
// answering is set.
func (a *adsStream) ask(typeURL string, answering *discovery.DiscoveryResponse, names ...string) error {
	req := &discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, Node: a.node}
	a.node = nil
	if answering != nil {
		req.VersionInfo, req.ResponseNonce = answering.GetVersionInfo(), answering.GetNonce()
	}
	return a.stream.Send(req)
}

// next waits for a response or the stream's end.
func (a *adsStream) next(timeout time.Duration) (*discovery.DiscoveryResponse, error) {
	select {
	case r := <-a.responses:
		return r, nil
	case err := <-a.ended:
		return nil, err
	case <-time.After(timeout):
		return nil, fmt.Errorf("no response within %s", timeout)
	}
}

// secretsOf decodes the secrets of an SDS response by name.
func secretsOf(t *testing.T, r *discovery.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	if r.GetTypeUrl() != resource.SecretType {
		t.Fatalf("got a %s response, want secrets", r.GetTypeUrl())
	}
	out := map[string]*tlsv3.Secret{}
	for _, a := range r.GetResources() {
		s := &tlsv3.Secret{}
		must(t, a.UnmarshalTo(s))
		out[s.GetName()] = s
	}
	return out
}

// servedCertificate is the certificate the xDS port presents to a new connection.
func servedCertificate(t *testing.T, identity *corev1.Secret) *x509.Certificate {
	t.Helper()
	cert, err := tls.X509KeyPair(identity.Data[corev1.TLSCertKey], identity.Data[corev1.TLSPrivateKeyKey])
	must(t, err)
	conn, err := tls.Dial("tcp", xdsAddr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert},
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	must(t, err)
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0]
}

// counter is the value of a counter of the operator's xDS metrics.
func counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := operator.Registry.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
