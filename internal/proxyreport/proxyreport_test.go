package proxyreport

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

func TestFromNodeID(t *testing.T) {
	for id, want := range map[string]*Proxy{
		envoy.NodeID(envoy.FlavourGRPC, "10.0.0.1", "ledger-0", "shop"): {Namespace: "shop", Pod: "ledger-0", Flavour: "grpc"},
		envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.1", "a.b.c", "shop"):   {Namespace: "shop", Pod: "a.b.c", Flavour: "envoy"},
		"grpc~10.0.0.1~nodot~shop.svc.cluster.local":                    nil,
		"grpc~10.0.0.1~pod.~x": nil,
		"just-a-name":          nil,
	} {
		got, ok := FromNodeID(id)
		if (want == nil) == ok || want != nil && got != *want {
			t.Errorf("FromNodeID(%q) = %+v, %v; want %+v", id, got, ok, want)
		}
	}
	got := proxiesOf([]string{envoy.NodeID(envoy.FlavourGRPC, "10.0.0.2", "b", "shop"), "x",
		envoy.NodeID(envoy.FlavourGRPC, "10.0.0.1", "a", "shop"), envoy.NodeID(envoy.FlavourGRPC, "10.0.0.2", "b", "shop")})
	if diff := cmp.Diff([]Proxy{{"shop", "a", "grpc"}, {"shop", "b", "grpc"}}, got); diff != "" {
		t.Errorf("proxiesOf (-want +got):\n%s", diff)
	}
}

// Connected merges every replica's fresh report and ignores stale or foreign ones.
func TestConnected(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	report := func(name, proxies string, at time.Time) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "sluice-system", Name: NamePrefix + name, Labels: map[string]string{zerotrust.LabelComponent: Component}},
			Data:       map[string]string{KeyProxies: proxies, KeyReportedAt: at.Format(time.RFC3339Nano)},
		}
	}
	c := fake.NewClientBuilder().WithObjects(
		report("a", "shop/p1 grpc\n", now.Add(-time.Minute)),
		report("b", "lab/p3 grpc\nshop/p2 envoy\nnot a line\n", now.Add(-10*time.Second)),
		report("dead", "shop/p4 grpc\n", now.Add(-StaleAfter)),
		func() *corev1.ConfigMap {
			cm := report("broken", "shop/p5 grpc\n", now)
			cm.Data[KeyReportedAt] = "a while ago"
			return cm
		}(),
	).Build()
	pods, next, err := Connected(context.Background(), c, "sluice-system", now, StaleAfter)
	if err != nil {
		t.Fatal(err)
	}
	want := map[types.NamespacedName]bool{{Namespace: "shop", Name: "p1"}: true, {Namespace: "shop", Name: "p2"}: true, {Namespace: "lab", Name: "p3"}: true}
	if diff := cmp.Diff(want, pods); diff != "" {
		t.Errorf("connected (-want +got):\n%s", diff)
	}
	if wantNext := now.Add(-time.Minute + StaleAfter); !next.Equal(wantNext) {
		t.Errorf("next %v, want %v", next, wantNext)
	}
}

// The reporter writes its replica's proxies when they change and deletes its report when it stops.
func TestReporter(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	var ids atomic.Pointer[[]string]
	set := func(v ...string) { ids.Store(&v) }
	set(envoy.NodeID(envoy.FlavourGRPC, "10.0.0.1", "a", "shop"))
	r := &Reporter{Client: c, Namespace: "sluice-system", Replica: "r1", NodeIDs: func() []string { return *ids.Load() }, Interval: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	key := types.NamespacedName{Namespace: "sluice-system", Name: NamePrefix + "r1"}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			cm := &corev1.ConfigMap{}
			err := c.Get(context.Background(), key, cm)
			if err == nil && cm.Data[KeyProxies] == want && cm.Labels[zerotrust.LabelComponent] == Component {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("report %v (%v), want proxies %q", cm.Data, err, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("shop/a grpc\n")
	set(envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.2", "b", "shop"), envoy.NodeID(envoy.FlavourGRPC, "10.0.0.1", "a", "shop"))
	waitFor("shop/a grpc\nshop/b envoy\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), key, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("the report is still there after the reporter stopped: %v", err)
	}
}
