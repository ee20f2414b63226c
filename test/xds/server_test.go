package xds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// serverListenerTemplate is the bootstrap's server_listener_resource_name_template, as
// docs/xds.md tells proxyless gRPC servers to set it.
const serverListenerTemplate = "grpc/server?xds.resource.listening_address=%s"

// An xDS-enabled gRPC server on its pod IP serves only while Sluice has a server listener for that
// address: not before its endpoint is in an EndpointSlice, then a proxyless client reaches it
// through the mesh, and it stops serving when the endpoint goes.
func TestProxylessServerServesOnItsPodIP(t *testing.T) {
	if podnetErr != nil {
		t.Skip(podnetErr)
	}
	ns := namespace(t, "server")
	b := &backend{pod: "ledger-0", version: "v1", ip: "192.0.2.91"}
	srv := startXDSServer(t, ns, b)

	// No EndpointSlice names 192.0.2.91 yet, so there is no listener for it: the server accepts
	// connections and closes them.
	if err := srv.directCall(); status.Code(err) != codes.Unavailable {
		t.Fatalf("a server with no listener should not serve; a direct call returned %v", err)
	}

	serviceFor(t, ns, "ledger", 8080, []*backend{b})
	srv.waitMode(t, connectivity.ServingModeServing, 20*time.Second)
	t.Logf("SERVING %s after the EndpointSlice", b.listenAddr())
	must(t, srv.directCall())

	c := testmesh.Client(t, xdsAddr, envoy.NodeID(envoy.FlavourGRPC, "192.0.2.90", "client", ns),
		"ledger."+ns+".svc.cluster.local:8080", plainDialer)
	before := b.calls.Load()
	counts := tally(t, c, 20)
	if counts["v1"] != 20 || b.calls.Load()-before != 20 {
		t.Fatalf("want the 20 calls answered by %s: %v, it counted %d", b.pod, counts, b.calls.Load()-before)
	}

	// The endpoint leaves the EndpointSlice: its listener is withdrawn and the server stops.
	slice := endpointSlice(ns, "ledger", b.port, nil)
	must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(slice), slice))
	slice.Endpoints = nil
	must(t, env.Client.Update(context.Background(), slice))
	mode := srv.waitMode(t, connectivity.ServingModeNotServing, 20*time.Second)
	t.Logf("NOT_SERVING once the endpoint left: %v", mode.err)
	if err := srv.directCall(); status.Code(err) != codes.Unavailable {
		t.Fatalf("a server whose listener was removed should not serve; a direct call returned %v", err)
	}
}

// xdsServer is a proxyless gRPC server of grpc-go's xds package, and the modes it reports.
type xdsServer struct {
	b     *backend
	modes chan servingMode
}

type servingMode struct {
	mode connectivity.ServingMode
	err  error
}

// startXDSServer starts b as an xDS-enabled gRPC server listening on its pod IP (b.ip, with a free
// port set in b.port), with a bootstrap of its own naming its pod in namespace ns.
func startXDSServer(t *testing.T, ns string, b *backend) *xdsServer {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(b.ip, "0"))
	must(t, err)
	b.port = int32(lis.Addr().(*net.TCPAddr).Port)
	b.listenIP = b.ip

	s := &xdsServer{b: b, modes: make(chan servingMode, 16)}
	nodeID := envoy.NodeID(envoy.FlavourGRPC, b.ip, b.pod, ns)
	gs, err := xds.NewGRPCServer(
		grpc.Creds(insecure.NewCredentials()),
		xds.BootstrapContentsForTesting(serverBootstrap(t, nodeID)),
		xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) {
			select { // the callback must not block
			case s.modes <- servingMode{mode: args.Mode, err: args.Err}:
			default:
			}
		}),
	)
	must(t, err)
	testgrpc.RegisterTestServiceServer(gs, b)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

// serverBootstrap is testmesh's bootstrap (node metadata flavour grpc) with the server listener
// name template.
func serverBootstrap(t *testing.T, nodeID string) []byte {
	t.Helper()
	var doc map[string]any
	must(t, json.Unmarshal(testmesh.Bootstrap(xdsAddr, nodeID), &doc))
	doc["server_listener_resource_name_template"] = serverListenerTemplate
	data, err := json.Marshal(doc)
	must(t, err)
	return data
}

// waitMode waits for the server to report want, failing on timeout.
func (s *xdsServer) waitMode(t *testing.T, want connectivity.ServingMode, timeout time.Duration) servingMode {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.modes:
			if m.mode == want {
				return m
			}
			t.Logf("server %s: %s (%v)", s.b.listenAddr(), m.mode, m.err)
		case <-deadline:
			t.Fatalf("server %s did not become %s within %s", s.b.listenAddr(), want, timeout)
		}
	}
}

// directCall makes one call to the server with a plain gRPC client, bypassing xDS on the client
// side: it fails with Unavailable while the server is not serving, which closes every connection
// it accepts.
func (s *xdsServer) directCall() error {
	conn, err := grpc.NewClient(s.b.listenAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(plainDialer))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	return err
}

func (b *backend) listenAddr() string {
	return net.JoinHostPort(b.listenIP, strconv.Itoa(int(b.port)))
}

// plainDialer dials the address as given: inside the namespace pod IPs are local.
func plainDialer(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("plain dialer: %w", err)
	}
	return conn, nil
}
