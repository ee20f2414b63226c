package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// xdsClient dials xds:///<host>:<port> with gRPC's own xDS client, configured for this test only.
func xdsClient(t *testing.T, target string) testgrpc.TestServiceClient {
	t.Helper()
	return xdsClientOf(t, xdsAddr, target)
}

// xdsClientOf is xdsClient for the xDS server at server, with extra dial options.
func xdsClientOf(t *testing.T, server, target string, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	return testmesh.Client(t, server, "grpc~127.0.0.1~"+t.Name()+"~test", target, loopbackDialer, opts...)
}

// tally makes n calls and counts the answers by server_id (the backend's version).
func tally(t *testing.T, c testgrpc.TestServiceClient, n int, md ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	for i := 0; i < n; i++ {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.UnaryCall(callCtx, &testgrpc.SimpleRequest{FillServerId: true}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		counts[resp.GetServerId()]++
	}
	return counts
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testmesh.Eventually(t, timeout, 100*time.Millisecond, check)
}

func share(counts map[string]int, key string) float64 {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	return 100 * float64(counts[key]) / float64(total)
}

func within(got, want, tolerance float64) error {
	if got < want-tolerance || got > want+tolerance {
		return fmt.Errorf("share %.1f%%, want %.0f±%.0f%%", got, want, tolerance)
	}
	return nil
}

// keepCalling calls in the background until the returned function is called, which returns how
// many calls were made and how many failed.
func keepCalling(t *testing.T, c testgrpc.TestServiceClient) func() (calls, failures int) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	var n, failed int
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
			cancel()
			n++
			if err != nil {
				failed++
				t.Logf("call %d failed: %v", n, err)
			}
		}
	}()
	return func() (int, int) {
		close(stop)
		<-done
		return n, failed
	}
}
