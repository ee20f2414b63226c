package envoy

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestNames(t *testing.T) {
	host := ServiceHostname("shop", "checkout")
	for _, tc := range []struct{ got, want string }{
		{host, "checkout.shop.svc.cluster.local"},
		{ClusterName(8080, "", host), "outbound|8080||checkout.shop.svc.cluster.local"},
		{ClusterName(8080, "v1", host), "outbound|8080|v1|checkout.shop.svc.cluster.local"},
		{RouteConfigName(host, 8080), "checkout.shop.svc.cluster.local:8080"},
		{APIListenerName(host, 8080), "checkout.shop.svc.cluster.local:8080"},
		{ServerListenerName("10.244.1.5", 50051), "grpc/server?xds.resource.listening_address=10.244.1.5:50051"},
		{ServerListenerName("fd00::5", 50051), "grpc/server?xds.resource.listening_address=[fd00::5]:50051"},
		{EnvoyListenerName("10.96.0.10", 8080), "10.96.0.10_8080"},
		{NodeID(FlavourGRPC, "10.244.1.5", "checkout-abc", "shop"), "grpc~10.244.1.5~checkout-abc.shop~shop.svc.cluster.local"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseClusterName(t *testing.T) {
	port, subset, host, ok := ParseClusterName(ClusterName(8080, "v1", "checkout.shop.svc.cluster.local"))
	if !ok || port != 8080 || subset != "v1" || host != "checkout.shop.svc.cluster.local" {
		t.Errorf("round trip gave %d %q %q %v", port, subset, host, ok)
	}
	if _, subset, _, ok := ParseClusterName("outbound|80||web.shop.svc.cluster.local"); !ok || subset != "" {
		t.Errorf("all-endpoints subset: %q %v", subset, ok)
	}
	for _, bad := range []string{PassthroughCluster, "outbound|x||h", "outbound|80|a|", "inbound|80||h", "outbound|80|h"} {
		if _, _, _, ok := ParseClusterName(bad); ok {
			t.Errorf("ParseClusterName(%q) accepted it", bad)
		}
	}
}

func TestFlavourOf(t *testing.T) {
	node := func(md map[string]any) *corev3.Node {
		s, err := structpb.NewStruct(md)
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Node{Metadata: s}
	}
	for _, tc := range []struct {
		node    *corev3.Node
		want    Flavour
		wantErr bool
	}{
		{nil, FlavourEnvoy, false},
		{node(map[string]any{}), FlavourEnvoy, false},
		{node(map[string]any{NodeMetadataFlavour: "grpc"}), FlavourGRPC, false},
		{node(map[string]any{NodeMetadataFlavour: "envoy"}), FlavourEnvoy, false},
		{node(map[string]any{NodeMetadataFlavour: "other"}), "", true},
	} {
		got, err := FlavourOf(tc.node)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("FlavourOf(%v) = %s, %v; want %s (error: %v)", tc.node, got, err, tc.want, tc.wantErr)
		}
	}
}
