package xds_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// backend is a real gRPC server implementing grpc.testing.TestService on a loopback address; its
// UnaryCall answers with its pod name as hostname and its version as server_id.
//
// The API server refuses loopback addresses in EndpointSlices, so each backend has a pod IP in
// 192.0.2.0/24 (TEST-NET-1, never routed) with the same last byte as its loopback address, and the
// test clients' dialer maps one to the other (see loopbackDialer). Only the socket's destination
// is rewritten; every address the xDS server sends is the pod IP.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	pod, version string
	ip           string // the pod IP in EndpointSlices, 192.0.2.N
	listenIP     string // where it listens, 127.0.0.N
	port         int32
	calls        atomic.Int64
}

func (b *backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.calls.Add(1)
	return &testgrpc.SimpleResponse{Hostname: b.pod, ServerId: b.version}, nil
}

// startBackends starts one backend per version on 127.0.0.<first>, <first+1>, ... all on one free
// port, as pods of one Service would be.
func startBackends(t *testing.T, first int, versions ...string) []*backend {
	t.Helper()
	port := freePortOn(t, first, len(versions))
	var out []*backend
	for i, v := range versions {
		b := &backend{pod: fmt.Sprintf("pod-%d-%s", first+i, v), version: v, port: port,
			ip: fmt.Sprintf("192.0.2.%d", first+i), listenIP: fmt.Sprintf("127.0.0.%d", first+i)}
		lis, err := net.Listen("tcp", net.JoinHostPort(b.listenIP, strconv.Itoa(int(port))))
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, b)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		out = append(out, b)
	}
	return out
}

// freePortOn finds a port free on every address 127.0.0.<first>..<first+n-1>.
func freePortOn(t *testing.T, first, n int) int32 {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", first))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", first+i, port))
			if err != nil {
				ok = false
				continue
			}
			_ = l.Close()
		}
		if ok {
			return int32(port)
		}
	}
	t.Fatal("no port free on every backend address")
	return 0
}

// serviceFor creates a Service with one gRPC port, a Pod per backend (labels app and version) and
// an EndpointSlice listing the backends, as Kubernetes would for running pods.
func serviceFor(t *testing.T, ns, name string, port int32, backends []*backend) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "grpc", Port: port}},
		},
	}
	must(t, env.Client.Create(ctx, svc))
	for _, b := range backends {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: b.pod, Labels: map[string]string{"app": name, "version": b.version}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sluice/demo-app"}}},
		}
		must(t, env.Client.Create(ctx, pod))
	}
	must(t, env.Client.Create(ctx, endpointSlice(ns, name, backends[0].port, backends)))
}

func endpointSlice(ns, service string, port int32, backends []*backend) *discoveryv1.EndpointSlice {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: service + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(port)}},
	}
	for _, b := range backends {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{b.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: b.pod},
		})
	}
	return slice
}

// loopbackDialer connects to 127.0.0.N where the address is 192.0.2.N, and refuses any other
// non-loopback address, so a test never sends a packet off this machine.
func loopbackDialer(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host).To4()
	switch {
	case ip != nil && ip[0] == 192 && ip[1] == 0 && ip[2] == 2:
		host = fmt.Sprintf("127.0.0.%d", ip[3])
	case ip != nil && ip[0] == 127:
	default:
		return nil, fmt.Errorf("test dialer: %s is neither a test pod IP nor loopback", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
