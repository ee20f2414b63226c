package proxyreport

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
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
		report("a", `[{"namespace":"shop","pod":"p1","flavour":"grpc"}]`, now.Add(-time.Minute)),
		report("b", `[{"namespace":"shop","pod":"p2","flavour":"envoy"},{"namespace":"lab","pod":"p3","flavour":"grpc"}]`, now.Add(-10*time.Second)),
		report("dead", `[{"namespace":"shop","pod":"p4","flavour":"grpc"}]`, now.Add(-StaleAfter)),
		report("broken", `{`, now),
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
