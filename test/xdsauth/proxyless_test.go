package xdsauth_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// echo is a plain gRPC TestService backend.
type echo struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echo) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

// echoService runs a backend on 127.0.0.77 and publishes it as Service echo (pod IP 192.0.2.77,
// which the client's dialer maps to the loopback address) in a namespace of its own.
func echoService(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.77:0")
	must(t, err)
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, echo{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	port := int32(lis.Addr().(*net.TCPAddr).Port)

	ctx := t.Context()
	ns := fmt.Sprintf("echo-%d", namespaceSeq.Add(1))
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, env.Client.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: 8080, AppProtocol: ptr.To("grpc")}}},
	}))
	must(t, env.Client.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "echo-1", Labels: map[string]string{"app": "echo"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}))
	must(t, env.Client.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "echo-1", Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(port)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.77"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "echo-1"}}},
	}))
	return ns
}

func toLoopback(ctx context.Context, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(addr, "192.0.2.77:") {
		return nil, fmt.Errorf("test dialer: unexpected address %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.77", port))
}

// mtlsChannel makes the bootstrap's xDS channel mutual TLS from the identity's files, and the node
// a pod of ns running as sa.
func mtlsChannel(t *testing.T, identity *corev1.Secret, ns, sa string) testmesh.BootstrapOption {
	dir := t.TempDir()
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		must(t, os.WriteFile(filepath.Join(dir, name), identity.Data[name], 0o600))
	}
	return func(doc map[string]any) {
		server := doc["xds_servers"].([]any)[0].(map[string]any)
		server["channel_creds"] = []any{map[string]any{"type": "tls", "config": map[string]any{
			"certificate_file":    filepath.Join(dir, "tls.crt"),
			"private_key_file":    filepath.Join(dir, "tls.key"),
			"ca_certificate_file": filepath.Join(dir, "ca.crt"),
		}}}
		doc["node"] = map[string]any{"id": envoy.NodeID(envoy.FlavourGRPC, "10.0.0.9", sa+"-1", ns), "metadata": map[string]any{
			envoy.NodeMetadataFlavour:        string(envoy.FlavourGRPC),
			envoy.NodeMetadataNamespace:      ns,
			envoy.NodeMetadataServiceAccount: sa,
		}}
	}
}

// proxylessCall makes one call through gRPC's own xDS client, whose xDS channel is bootstrap's.
func proxylessCall(t *testing.T, bootstrap []byte, target string, wait time.Duration) error {
	t.Helper()
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	must(t, err)
	conn, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver), grpc.WithContextDialer(toLoopback))
	must(t, err)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true))
	return err
}

// gRPC's own xDS client, on a mutual TLS xDS channel with its workload certificate, gets its
// configuration and calls; the same client claiming another service account gets none.
func TestProxylessClientOverMutualTLS(t *testing.T) {
	ns, secrets := workloads(t, "proxyless", "client")
	target := "echo." + echoService(t) + ".svc.cluster.local:8080"

	ok := testmesh.Bootstrap(xdsAddr, "ignored", mtlsChannel(t, secrets["client"], ns, "client"))
	start := time.Now()
	if err := proxylessCall(t, ok, target, 10*time.Second); err != nil {
		t.Fatalf("the proxyless client with its own identity: %v", err)
	}
	t.Logf("first call answered %s after the client started", time.Since(start).Round(time.Millisecond))

	before := counter(t, "sluice_xds_refused_streams_total", "reason", "node")
	impostor := testmesh.Bootstrap(xdsAddr, "ignored", mtlsChannel(t, secrets["client"], ns, "admin"))
	if err := proxylessCall(t, impostor, target, 2*time.Second); err == nil {
		t.Fatal("the client claiming another service account got its configuration")
	} else {
		t.Logf("impostor: %v", err)
	}
	if got := counter(t, "sluice_xds_refused_streams_total", "reason", "node"); got <= before {
		t.Errorf("refused for the node: %v, want more than %v", got, before)
	}
}
