package demoapp

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver, configured by GRPC_XDS_BOOTSTRAP
)

// Dial is a client of target as a proxyless gRPC client of the mesh when target is xds:///…:
// mutual TLS when the control plane's clusters ask for it (a STRICT ZeroTrust), plain text
// otherwise.
func Dial(target string) (*grpc.ClientConn, error) {
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(creds))
}

// Call makes n UnaryCalls to target one after the other, each bounded by timeout, and writes a
// line per call to out (who answered, as which version, and whom it saw calling; or the error),
// then one with the count. It returns how many were answered.
func Call(ctx context.Context, target string, n int, timeout time.Duration, out io.Writer) (int, error) {
	conn, err := Dial(target)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	client := testpb.NewTestServiceClient(conn)
	answered := 0
	for i := 1; i <= n; i++ {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := client.UnaryCall(callCtx, &testpb.SimpleRequest{FillServerId: true, FillUsername: true}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			fmt.Fprintf(out, "call %d: %v\n", i, err)
			continue
		}
		answered++
		caller := resp.GetUsername()
		if caller == "" {
			caller = "plain text (no client certificate)"
		}
		fmt.Fprintf(out, "call %d: answered by %s (version %s), seeing the caller as %s\n", i, resp.GetHostname(), resp.GetServerId(), caller)
	}
	fmt.Fprintf(out, "%d/%d answered\n", answered, n)
	return answered, nil
}
