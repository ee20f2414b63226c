package xds_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
)

// grpc-go v1.85's queued-call window (docs/xds-server.md): a client whose xDS server cannot be
// reached before it has a listener puts in a config selector that picks no cluster; a
// WaitForReady call made then waits, and once the configuration arrives the cluster manager picks
// it with no cluster and fails it. Sluice cannot prevent it; this test pins the behaviour, so an
// upgrade of grpc-go that fixes it is noticed (then the docs and startOperator's wait change).
func TestCallQueuedOnAnUnreachableServerFails(t *testing.T) {
	ns := namespace(t, "unreachable")
	serviceFor(t, ns, "checkout", 8080, startBackends(t, 121, "v1"))
	addr := freeAddr()
	began := &rpcBegan{ch: make(chan struct{})}
	c := xdsClientOf(t, addr, "checkout."+ns+".svc.cluster.local:8080", grpc.WithStatsHandler(began))

	// Nothing listens on addr: a call fails at once with the listener's resource error.
	eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err == nil || !strings.Contains(err.Error(), "listener resource error") {
			return fmt.Errorf("want the listener's resource error, got %w", err)
		}
		return nil
	})
	queued := make(chan error, 1)
	began.arm()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		queued <- err
	}()
	<-began.ch // the call has its config (grpc-go tells stats handlers after it selected it)

	ctx, cancel := context.WithCancel(context.Background())
	stopped, _, err := startOperator(ctx, addr, false)
	must(t, err)
	defer func() { cancel(); <-stopped }()
	err = <-queued
	const window = `unknown cluster selected for RPC: ""`
	if err == nil || !strings.Contains(err.Error(), window) {
		t.Fatalf("the queued call: %v; grpc-go's window (%s) may be gone: update docs/xds-server.md and startOperator", err, window)
	}
	t.Logf("the queued call failed as grpc-go v1.85 does: %v", err)
	// Only the queued call: the next calls are served.
	eventually(t, 20*time.Second, func() error {
		if counts := tally(t, c, 10); counts["v1"] != 10 {
			return fmt.Errorf("want every call on v1: %v", counts)
		}
		return nil
	})
}

// rpcBegan closes ch at the first RPC that begins once armed.
type rpcBegan struct {
	mu    sync.Mutex
	armed bool
	ch    chan struct{}
}

func (b *rpcBegan) arm() { b.mu.Lock(); b.armed = true; b.mu.Unlock() }

func (b *rpcBegan) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (b *rpcBegan) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.Begin); !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed {
		b.armed = false
		close(b.ch)
	}
}

func (*rpcBegan) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (*rpcBegan) HandleConn(context.Context, stats.ConnStats)                       {}
