package xds_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// A proxy that rejects a route (here a real ADS stream that NACKs what it is sent, as a proxy
// lacking a feature would) is recorded, and the TrafficPolicy that shaped the route says so in
// its Programmed condition.
func TestNACKSurfacesOnThePolicy(t *testing.T) {
	ns := namespace(t, "nack")
	serviceFor(t, ns, "checkout", 8080, startBackends(t, 41, "v1"))
	tp := splitPolicy(ns, "checkout", 100, 0)
	must(t, env.Client.Create(context.Background(), tp))
	eventually(t, 20*time.Second, func() error { return wantProgrammed(t, tp, metav1.ConditionTrue, "Programmed", "") })

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(t, err)
	node := &corev3.Node{Id: "grpc~127.0.0.1~strict-proxy.nack~nack.svc.cluster.local", Metadata: &structpb.Struct{
		Fields: map[string]*structpb.Value{envoy.NodeMetadataFlavour: structpb.NewStringValue(string(envoy.FlavourGRPC))}}}
	route := envoy.RouteConfigName("checkout.nack.svc.cluster.local", 8080)
	must(t, stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.RouteType, ResourceNames: []string{route}}))
	resp, err := stream.Recv()
	must(t, err)
	if len(resp.GetResources()) != 1 {
		t.Fatalf("want the one route %s, got %d resources", route, len(resp.GetResources()))
	}
	must(t, stream.Send(&discoveryv3.DiscoveryRequest{
		Node: node, TypeUrl: resource.RouteType, ResourceNames: []string{route}, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "route " + route + ": field weighted_clusters is not supported by this proxy"},
	}))

	eventually(t, 20*time.Second, func() error {
		return wantProgrammed(t, tp, metav1.ConditionFalse, "Rejected", "weighted_clusters is not supported by this proxy")
	})
}

// A policy the translation cannot honour (a header regex that does not compile) is reported on the
// policy, names the field, and costs nothing already working: the route is left out and every other
// change still reaches the proxies.
func TestInvalidRouteIsReportedAndLeftOut(t *testing.T) {
	ns := namespace(t, "invalid")
	backends := startBackends(t, 71, "v1", "v2")
	serviceFor(t, ns, "checkout", 8080, backends)
	tp := splitPolicy(ns, "checkout", 100, 0)
	tp.Spec.Routes = append([]meshv1alpha1.Route{{
		Name:         "broken",
		Match:        &meshv1alpha1.RouteMatch{Headers: []meshv1alpha1.HeaderMatch{{Name: "x-user", Regex: ptr.To("(unclosed")}}},
		Destinations: []meshv1alpha1.Destination{{Subset: "v2"}},
	}}, tp.Spec.Routes...)
	must(t, env.Client.Create(context.Background(), tp))

	c := xdsClient(t, "checkout.invalid.svc.cluster.local:8080")
	eventually(t, 20*time.Second, func() error {
		if counts := tally(t, c, 50); counts["v1"] != 50 {
			return fmt.Errorf("the split route should still apply: %v", counts)
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		got := &meshv1alpha1.TrafficPolicy{}
		must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(tp), got))
		cond := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, "spec.routes[0].match.headers[0].regex") {
			return fmt.Errorf("Accepted should be False and name the field: %+v", cond)
		}
		t.Logf("Accepted=False: %s", cond.Message)
		return nil
	})
}

func wantProgrammed(t *testing.T, tp *meshv1alpha1.TrafficPolicy, status metav1.ConditionStatus, reason, message string) error {
	t.Helper()
	got := &meshv1alpha1.TrafficPolicy{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(tp), got); err != nil {
		return err
	}
	cond := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionProgrammed)
	if cond == nil {
		return fmt.Errorf("no Programmed condition yet")
	}
	if cond.Status != status || cond.Reason != reason || !strings.Contains(cond.Message, message) {
		return fmt.Errorf("Programmed is %s/%s: %s", cond.Status, cond.Reason, cond.Message)
	}
	return nil
}
