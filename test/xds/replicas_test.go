package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Every replica serves xDS, not only the leader: of two replicas competing for the lease, the one
// that is not leading still programs the clients that connect to it.
func TestEveryReplicaServesXDS(t *testing.T) {
	ns := namespace(t, "replicas")
	serviceFor(t, ns, "checkout", 8080, startBackends(t, 81, "v1", "v2"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var addrs []string
	for range 2 {
		addr := freeAddr()
		stopped, _, err := startOperator(ctx, addr, true)
		must(t, err)
		t.Cleanup(func() { cancel(); <-stopped })
		addrs = append(addrs, addr)
	}
	for _, addr := range addrs {
		c := xdsClientOf(t, addr, "checkout."+ns+".svc.cluster.local:8080")
		eventually(t, 30*time.Second, func() error {
			if counts := tally(t, c, 40); counts["v1"] == 0 || counts["v2"] == 0 {
				return fmt.Errorf("replica %s: calls should reach both pods: %v", addr, counts)
			}
			return nil
		})
	}
}
