package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func splitPolicy(ns, service string, v1, v2 int32) *meshv1alpha1.TrafficPolicy {
	return &meshv1alpha1.TrafficPolicy{
		ObjectMeta: metaOf(ns, service),
		Spec: meshv1alpha1.TrafficPolicySpec{
			TargetRef: meshv1alpha1.ServiceRef{Kind: "Service", Name: service},
			Subsets: []meshv1alpha1.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}},
				{Name: "v2", Labels: map[string]string{"version": "v2"}},
			},
			Routes: []meshv1alpha1.Route{{
				Name: "split",
				Destinations: []meshv1alpha1.Destination{
					{Subset: "v1", Weight: ptr.To(v1)},
					{Subset: "v2", Weight: ptr.To(v2)},
				},
			}},
		},
	}
}

// A 90/10 split lands within ±3 points over 2000 real calls, and a new weight changes the split.
func TestWeightedSplit(t *testing.T) {
	ns := namespace(t, "split")
	backends := startBackends(t, 11, "v1", "v1", "v2", "v2")
	serviceFor(t, ns, "checkout", 8080, backends)
	tp := splitPolicy(ns, "checkout", 90, 10)
	must(t, env.Client.Create(context.Background(), tp))

	c := xdsClient(t, "checkout.split.svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		counts := tally(t, c, 200)
		if counts["v2"] == 0 || counts["v1"] < 150 {
			return fmt.Errorf("the split is not in place yet: %v", counts)
		}
		return nil
	})
	counts := tally(t, c, 2000)
	t.Logf("90/10: %v", counts)
	if err := within(share(counts, "v2"), 10, 3); err != nil {
		t.Error(err)
	}

	must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(tp), tp))
	tp.Spec.Routes[0].Destinations[0].Weight = ptr.To[int32](70)
	tp.Spec.Routes[0].Destinations[1].Weight = ptr.To[int32](30)
	must(t, env.Client.Update(context.Background(), tp))
	eventually(t, 20*time.Second, func() error { return within(share(tally(t, c, 400), "v2"), 30, 9) })
	counts = tally(t, c, 2000)
	t.Logf("70/30: %v", counts)
	if err := within(share(counts, "v2"), 30, 4); err != nil {
		t.Error(err)
	}
}

// A header route pins matching calls to one subset; other calls still reach every version.
func TestHeaderRoutePinsSubset(t *testing.T) {
	ns := namespace(t, "header")
	backends := startBackends(t, 21, "v1", "v2")
	serviceFor(t, ns, "checkout", 8080, backends)
	tp := &meshv1alpha1.TrafficPolicy{
		ObjectMeta: metaOf(ns, "checkout"),
		Spec: meshv1alpha1.TrafficPolicySpec{
			TargetRef: meshv1alpha1.ServiceRef{Kind: "Service", Name: "checkout"},
			Subsets:   []meshv1alpha1.Subset{{Name: "v2", Labels: map[string]string{"version": "v2"}}},
			Routes: []meshv1alpha1.Route{{
				Name:         "beta",
				Match:        &meshv1alpha1.RouteMatch{Headers: []meshv1alpha1.HeaderMatch{{Name: "x-user-group", Exact: ptr.To("beta")}}},
				Destinations: []meshv1alpha1.Destination{{Subset: "v2", Weight: ptr.To[int32](100)}},
			}},
		},
	}
	must(t, env.Client.Create(context.Background(), tp))

	c := xdsClient(t, "checkout.header.svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		if counts := tally(t, c, 50, "x-user-group", "beta"); counts["v1"] > 0 {
			return fmt.Errorf("beta calls still reach v1: %v", counts)
		}
		return nil
	})
	if counts := tally(t, c, 500, "x-user-group", "beta"); counts["v1"] > 0 {
		t.Errorf("beta calls reached v1: %v", counts)
	}
	if counts := tally(t, c, 500); counts["v1"] == 0 || counts["v2"] == 0 {
		t.Errorf("calls without the header should reach both versions: %v", counts)
	}
}

// An endpoint removed from its EndpointSlice stops receiving calls.
func TestRemovedEndpointGetsNoCalls(t *testing.T) {
	ns := namespace(t, "removal")
	backends := startBackends(t, 31, "v1", "v1", "v1")
	serviceFor(t, ns, "checkout", 8080, backends)

	c := xdsClient(t, "checkout.removal.svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		tally(t, c, 60)
		for _, b := range backends {
			if b.calls.Load() == 0 {
				return fmt.Errorf("%s got no call yet", b.pod)
			}
		}
		return nil
	})

	slice := endpointSlice(ns, "checkout", backends[0].port, backends[:2])
	current := endpointSlice(ns, "checkout", backends[0].port, nil)
	must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(current), current))
	slice.ResourceVersion = current.ResourceVersion
	must(t, env.Client.Update(context.Background(), slice))

	removed := backends[2]
	eventually(t, 20*time.Second, func() error {
		before := removed.calls.Load()
		tally(t, c, 100)
		if n := removed.calls.Load() - before; n > 0 {
			return fmt.Errorf("%s still got %d calls", removed.pod, n)
		}
		return nil
	})
	before := removed.calls.Load()
	tally(t, c, 500)
	if n := removed.calls.Load() - before; n > 0 {
		t.Errorf("the removed endpoint got %d of 500 calls", n)
	}
}

// A Rollout's status weight splits traffic between the stable and the canary revision, and the
// canary's start fails no call of a client that is busy calling (make before break).
func TestRolloutWeightSplitsTraffic(t *testing.T) {
	ns := namespace(t, "rollout")
	backends := startBackends(t, 51, "v1", "v1", "v2")
	serviceFor(t, ns, "checkout", 8080, backends)
	for _, b := range backends {
		pod := podOf(t, ns, b.pod)
		pod.Labels["pod-template-hash"] = map[string]string{"v1": "stable1", "v2": "canary2"}[b.version]
		must(t, env.Client.Update(context.Background(), pod))
	}
	ro := &meshv1alpha1.Rollout{
		ObjectMeta: metaOf(ns, "checkout"),
		Spec: meshv1alpha1.RolloutSpec{
			TargetRef: meshv1alpha1.WorkloadRef{Kind: "Deployment", Name: "checkout"},
			Service:   meshv1alpha1.ServicePort{Name: "checkout", Port: 8080},
			Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{
				Steps: []meshv1alpha1.CanaryStep{{SetWeight: ptr.To[int32](20)}},
			}},
		},
	}
	must(t, env.Client.Create(context.Background(), ro))

	// No canary yet: every pod serves.
	c := xdsClient(t, "checkout.rollout.svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		if counts := tally(t, c, 100); counts["v2"] == 0 || counts["v1"] == 0 {
			return fmt.Errorf("with no canary running every pod should serve: %v", counts)
		}
		return nil
	})

	busy := keepCalling(t, c)
	ro.Status.StableRevision, ro.Status.CanaryRevision, ro.Status.CanaryWeight = "stable1", "canary2", 20
	must(t, env.Client.Status().Update(context.Background(), ro))
	eventually(t, 20*time.Second, func() error { return within(share(tally(t, c, 400), "v2"), 20, 8) })
	if calls, failures := busy(); failures > 0 {
		t.Errorf("%d of %d calls failed while the canary started", failures, calls)
	} else {
		t.Logf("%d calls during the canary's start, none failed", calls)
	}

	counts := tally(t, c, 2000)
	t.Logf("rollout at 20%%: %v", counts)
	if err := within(share(counts, "v2"), 20, 3); err != nil {
		t.Error(err)
	}
}
