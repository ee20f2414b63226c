package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The xDS server restarted under continuous calls: clients keep their last config while it is
// gone, reconnect when it is back, take new config from it, and no call fails.
func TestServerRestartFailsNoCall(t *testing.T) {
	ns := namespace(t, "restart")
	backends := startBackends(t, 61, "v1", "v2")
	serviceFor(t, ns, "checkout", 8080, backends)
	tp := splitPolicy(ns, "checkout", 100, 0)
	must(t, env.Client.Create(context.Background(), tp))

	// An operator of this test's own, so it can be stopped and started again.
	addr := freeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	stopped, _, err := startOperator(ctx, addr, false)
	must(t, err)
	c := xdsClientOf(t, addr, "checkout."+ns+".svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		if counts := tally(t, c, 50); counts["v1"] != 50 {
			return fmt.Errorf("want every call on v1: %v", counts)
		}
		return nil
	})

	busy := keepCalling(t, c)
	cancel()
	<-stopped
	time.Sleep(time.Second) // calls go on with no xDS server
	ctx2, cancel2 := context.WithCancel(context.Background())
	stopped2, reg, err := startOperator(ctx2, addr, false)
	must(t, err)
	defer func() { cancel2(); <-stopped2 }()
	eventually(t, 30*time.Second, func() error {
		if n := connectedProxies(reg); n < 1 {
			return fmt.Errorf("the client has not reconnected (%v proxies)", n)
		}
		return nil
	})

	// The restarted server's config reaches the client, new clusters included.
	must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(tp), tp))
	tp.Spec.Routes[0].Destinations[0].Weight = ptr.To[int32](0)
	tp.Spec.Routes[0].Destinations[1].Weight = ptr.To[int32](100)
	must(t, env.Client.Update(context.Background(), tp))
	eventually(t, 30*time.Second, func() error {
		if counts := tally(t, c, 50); counts["v2"] != 50 {
			return fmt.Errorf("the new config has not arrived: %v", counts)
		}
		return nil
	})
	if calls, failures := busy(); failures > 0 {
		t.Errorf("%d of %d calls failed across the restart", failures, calls)
	} else {
		t.Logf("%d calls across the restart, none failed", calls)
	}
}
