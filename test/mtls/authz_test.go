package mtls_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// STRICT with a rule: service account client may call grpc.testing.TestService/UnaryCall on the
// ledger Service, nothing else. The ledger server's listener carries grpc-go's RBAC filter: the
// client's UnaryCall is served, its EmptyCall (no rule lists it) and any call of another identity
// (intruder, with its own certificate from the same CA) are refused with PERMISSION_DENIED.
func TestAuthorization(t *testing.T) {
	if podnetErr != nil {
		t.Skip(podnetErr)
	}
	const ns = "mtls-authz"
	ctx := context.Background()
	issuer := meshCA(t)
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, env.Client.Create(ctx, &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mesh"},
		Spec: meshv1alpha1.ZeroTrustSpec{
			Selector: &metav1.LabelSelector{},
			MTLS:     meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
			Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: issuer.IssuerName}},
			Rules: []meshv1alpha1.AuthorizationRule{{
				Name: "client-reads",
				To: meshv1alpha1.AuthorizationTarget{
					Service: "ledger",
					Ports:   []int32{8080},
					Paths:   []string{"/grpc.testing.TestService/UnaryCall"},
					Methods: []meshv1alpha1.HTTPMethod{"POST"},
				},
				From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "client"}},
			}},
		},
	}))
	clientFiles, intruderFiles := issue(t, issuer, ns, "client"), issue(t, issuer, ns, "intruder")
	srv := startServer(t, ns, "ledger-0", "192.0.2.115", issue(t, issuer, ns, "ledger"))
	createService(t, ns, "ledger", srv)
	srv.waitMode(t, connectivity.ServingModeServing, 20*time.Second)

	clientConn := authzConn(t, ns, "client-0", "192.0.2.116", clientFiles)
	client := testgrpc.NewTestServiceClient(clientConn)
	intruder := authzClient(t, ns, "intruder-0", "192.0.2.117", intruderFiles)

	// The rules are in the listener the server got with its EndpointSlice; should the operator
	// have sent one without them first, the update follows within the poll.
	start := time.Now()
	testmesh.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := unary(intruder)
		if status.Code(err) != codes.PermissionDenied {
			return fmt.Errorf("intruder's UnaryCall: want PermissionDenied, got %w", err)
		}
		return nil
	})
	t.Logf("intruder's UnaryCall denied after %v", time.Since(start).Round(time.Millisecond))

	for i := range 10 {
		resp, err := unary(client)
		if err != nil {
			t.Fatalf("client's UnaryCall %d: %v", i, err)
		}
		if want := "spiffe://cluster.local/ns/" + ns + "/sa/client"; resp.GetServerId() != want {
			t.Fatalf("the server saw the client as %q, want %q", resp.GetServerId(), want)
		}
	}
	t.Log("10 UnaryCalls of client allowed")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.EmptyCall(ctx, &testgrpc.Empty{}, grpc.WaitForReady(true))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("client's EmptyCall (no rule lists it): want PermissionDenied, got %v", err)
	}
	t.Logf("client's EmptyCall denied: %v", err)
	for i := range 5 {
		if _, err := unary(intruder); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("intruder's UnaryCall %d: want PermissionDenied, got %v", i, err)
		}
	}

	// No spelling of the denied path reaches it: grpc-go serves only an exact /<service>/<method>,
	// and the RBAC filter sees the same string, so an encoding is either denied by the rules or
	// names no method.
	for _, path := range deniedPathSpellings {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := clientConn.Invoke(ctx, path, &testgrpc.Empty{}, &testgrpc.Empty{}, grpc.WaitForReady(true))
		cancel()
		if code := status.Code(err); code != codes.PermissionDenied && code != codes.Unimplemented {
			t.Errorf("%q: want PermissionDenied or Unimplemented, got %v", path, err)
		}
	}
	t.Logf("%d spellings of the denied EmptyCall were all refused", len(deniedPathSpellings))
}

// deniedPathSpellings are ways to write /grpc.testing.TestService/EmptyCall (denied) that a path
// normaliser might map onto it, or onto the allowed UnaryCall's prefix.
var deniedPathSpellings = []string{
	"/grpc.testing.TestService//EmptyCall",
	"//grpc.testing.TestService/EmptyCall",
	"/grpc.testing.TestService/./EmptyCall",
	"/grpc.testing.TestService/UnaryCall/../EmptyCall",
	"/grpc.testing.TestService/UnaryCall%2F..%2FEmptyCall",
	"/grpc.testing.TestService%2FEmptyCall",
	"/grpc.testing.TestService%2fEmptyCall",
	"/grpc.testing.TestService/%45mptyCall",
	"/grpc.testing.TestService/%2545mptyCall",
	"/GRPC.TESTING.TESTSERVICE/EMPTYCALL",
	"/grpc.testing.TestService/EmptyCall#fragment",
	"/grpc.testing.TestService/EmptyCall;param",
	"/grpc.testing.TestService/EmptyCall?query",
	"/grpc.testing.TestService/EmptyCall/",
	"/grpc.testing.TestService/UnaryCall/../../grpc.testing.TestService/EmptyCall",
}

// authzClient is a proxyless client of the ledger Service with the identity in files.
func authzClient(t *testing.T, ns, pod, ip string, files testmesh.CertificateFiles) testgrpc.TestServiceClient {
	t.Helper()
	return testgrpc.NewTestServiceClient(authzConn(t, ns, pod, ip, files))
}

// authzConn is authzClient's connection, for calls to any method name.
func authzConn(t *testing.T, ns, pod, ip string, files testmesh.CertificateFiles) *grpc.ClientConn {
	t.Helper()
	resolver, err := xds.NewXDSResolverWithConfigForTesting(testmesh.Bootstrap(xdsAddr,
		envoy.NodeID(envoy.FlavourGRPC, ip, pod, ns), testmesh.WithCertificates(files)))
	must(t, err)
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	must(t, err)
	conn, err := grpc.NewClient("xds:///ledger."+ns+".svc.cluster.local:8080", grpc.WithTransportCredentials(creds), grpc.WithResolvers(resolver))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func unary(c testgrpc.TestServiceClient) (*testgrpc.SimpleResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
}
