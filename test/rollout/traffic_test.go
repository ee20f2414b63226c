package rollout_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// client is a proxyless gRPC client of the Service, through the operator's xDS server.
func newClient(t *testing.T, ns, svc string) testgrpc.TestServiceClient {
	t.Helper()
	target := fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc, ns, appPort)
	return testmesh.Client(t, xdsAddr, "grpc~"+ns+"~"+t.Name()+"~client", target, loopbackDialer)
}

// load keeps calling the Service in the background, as its users would, so that Prometheus sees
// the canary's traffic; it counts the answers by version.
type load struct {
	mu       sync.Mutex
	byServer map[string]int
	failures int
	errors   []string // the first few, with their time
}

// startLoad calls every interval (plus the call's own time) until the test ends.
func startLoad(t *testing.T, c testgrpc.TestServiceClient, every time.Duration) *load {
	t.Helper()
	l := &load{byServer: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			callCtx, cancelCall := context.WithTimeout(ctx, 5*time.Second)
			resp, err := c.UnaryCall(callCtx, &testgrpc.SimpleRequest{FillServerId: true}, grpc.WaitForReady(true))
			cancelCall()
			l.mu.Lock()
			if err != nil {
				l.failures++
				if len(l.errors) < 5 {
					l.errors = append(l.errors, time.Now().Format("15:04:05.000")+" "+err.Error())
				}
			} else {
				l.byServer[resp.GetServerId()]++
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// split makes n calls, with the metadata pairs md, and counts the answers by version (server_id).
func split(t *testing.T, c testgrpc.TestServiceClient, n int, md ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	base := metadata.AppendToOutgoingContext(context.Background(), md...)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(base, 10*time.Second)
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			counts["error"]++
			continue
		}
		counts[resp.GetServerId()]++
	}
	return counts
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

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testmesh.Eventually(t, timeout, 200*time.Millisecond, check)
}
