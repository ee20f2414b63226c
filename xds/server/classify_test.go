package server

import (
	"context"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// checkListeners checks that a response holds exactly the listeners named, all of flavour f.
func checkListeners(t *testing.T, got map[string]*listenerv3.Listener, f envoy.Flavour, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got listeners %v, want %v", keys(got), want)
	}
	for _, name := range want {
		l, ok := got[name]
		if !ok {
			t.Fatalf("got listeners %v, want %v", keys(got), want)
		}
		if isGRPC := l.GetApiListener() != nil; isGRPC != (f == envoy.FlavourGRPC) {
			t.Errorf("listener %s is not a %s listener", name, f)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func listeners(t *testing.T, r *discovery.DiscoveryResponse) map[string]*listenerv3.Listener {
	t.Helper()
	out := map[string]*listenerv3.Listener{}
	for name, m := range decode(t, r.GetResources()) {
		out[name] = m.(*listenerv3.Listener)
	}
	return out
}

func deltaListeners(t *testing.T, r *discovery.DeltaDiscoveryResponse) map[string]*listenerv3.Listener {
	t.Helper()
	out := map[string]*listenerv3.Listener{}
	for _, res := range r.GetResources() {
		var l listenerv3.Listener
		if err := res.GetResource().UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		out[res.GetName()] = &l
	}
	return out
}

// Each flavour gets its own listeners, on the first request of a stream and on later ones, which
// carry no node.
func TestListenersFollowNodeFlavour(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.envoyListeners["l-envoy-2"] = "r1"
	ts.publish(t, m)
	conn := ts.dial(t)

	envoyC := newSotwClient(t, conn, testNode("envoy-1", "")) // no flavour metadata: Envoy
	grpcC := newSotwClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	grpcD := newDeltaClient(t, conn, testNode("grpc-2", envoy.FlavourGRPC))

	// Envoy asks for every listener on its first request.
	checkListeners(t, listeners(t, envoyC.fetch(resource.ListenerType)), envoy.FlavourEnvoy, "l-envoy", "l-envoy-2")
	// The gRPC clients ask for listeners on a later request, without node.
	grpcC.fetch(resource.ClusterType, "c1")
	checkListeners(t, listeners(t, grpcC.fetch(resource.ListenerType, "l-grpc")), envoy.FlavourGRPC, "l-grpc")
	grpcD.subscribe(resource.ClusterType, "c1")
	grpcD.ack(grpcD.next(resource.ClusterType))
	grpcD.subscribe(resource.ListenerType, "*")
	d := grpcD.next(resource.ListenerType)
	checkListeners(t, deltaListeners(t, d), envoy.FlavourGRPC, "l-grpc")
	grpcD.ack(d)

	// Later pushes go by the node of the stream too; the watches were made by requests without node.
	m2 := m.clone()
	m2.routes["r2"] = "c1"
	m2.envoyListeners["l-envoy"] = "r2"
	m2.grpcListeners["l-grpc"] = "r2"
	m2.grpcListeners["l-grpc-2"] = "r1"
	ts.publish(t, m2)
	checkListeners(t, listeners(t, envoyC.next(resource.ListenerType)), envoy.FlavourEnvoy, "l-envoy", "l-envoy-2")
	checkListeners(t, listeners(t, grpcC.next(resource.ListenerType)), envoy.FlavourGRPC, "l-grpc")
	checkListeners(t, deltaListeners(t, grpcD.next(resource.ListenerType)), envoy.FlavourGRPC, "l-grpc", "l-grpc-2")

	for _, p := range ts.Proxies() {
		want := envoy.FlavourGRPC
		if p.NodeID == "envoy-1" {
			want = envoy.FlavourEnvoy
		}
		if p.Flavour != want {
			t.Errorf("proxy %s has flavour %q, want %q", p.NodeID, p.Flavour, want)
		}
	}
}

// The per-type LDS service classifies by flavour too, including a delta request without type URL.
func TestListenerServiceFollowsNodeFlavour(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	conn := ts.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := listenerservice.NewListenerDiscoveryServiceClient(conn).DeltaListeners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: testNode("grpc-1", envoy.FlavourGRPC)}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	checkListeners(t, deltaListeners(t, r), envoy.FlavourGRPC, "l-grpc")
}

func TestStreamsWithBadNodesAreRejected(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	conn := ts.dial(t)
	for name, c := range map[string]*sotwClient{
		"unknown flavour": newSotwClient(t, conn, testNode("x", "bogus")),
		"no node":         newSotwClient(t, conn, nil),
		"no node id":      newSotwClient(t, conn, testNode("", envoy.FlavourEnvoy)),
	} {
		t.Run(name, func(t *testing.T) {
			c.t = t
			c.subscribe(resource.ClusterType)
			select {
			case err := <-c.ended:
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("stream ended with %v, want InvalidArgument", err)
				}
			case <-time.After(wait):
				t.Fatal("the stream was not rejected")
			}
		})
	}
	if p := ts.Proxies(); len(p) != 0 {
		t.Errorf("rejected streams are listed as proxies: %+v", p)
	}
}

func TestNodeFlavour(t *testing.T) {
	for _, tc := range []struct {
		flavour envoy.Flavour
		want    envoy.Flavour
		err     bool
	}{
		{"", envoy.FlavourEnvoy, false},
		{envoy.FlavourEnvoy, envoy.FlavourEnvoy, false},
		{envoy.FlavourGRPC, envoy.FlavourGRPC, false},
		{"GRPC", "", true},
	} {
		got, err := nodeFlavour(testNode("n", tc.flavour))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("nodeFlavour(%q) = %q, %v; want %q, error %t", tc.flavour, got, err, tc.want, tc.err)
		}
	}
	if got, err := nodeFlavour(nil); got != envoy.FlavourEnvoy || err != nil {
		t.Errorf("nodeFlavour(nil) = %q, %v", got, err)
	}
}

// Clusters a flavour overrides (proxyless gRPC clusters to mTLS servers) reach only nodes of that
// flavour; the others get the shared cluster of the same name, and a change of the override alone
// is pushed to that flavour only.
func TestClustersFollowNodeFlavour(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	snap := m.snapshot(t)
	override := proto.Clone(snap.Clusters["c1"]).(*clusterv3.Cluster)
	override.ConnectTimeout = durationpb.New(7 * time.Second)
	snap.ClusterOverrides = map[envoy.Flavour]map[string]*clusterv3.Cluster{envoy.FlavourGRPC: {"c1": override}}
	if err := ts.Publish(snap, time.Now()); err != nil {
		t.Fatal(err)
	}
	conn := ts.dial(t)
	envoyC := newSotwClient(t, conn, testNode("envoy-1", ""))
	grpcC := newSotwClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	timeout := func(r *discovery.DiscoveryResponse) time.Duration {
		t.Helper()
		c := decode(t, r.GetResources())["c1"].(*clusterv3.Cluster)
		return c.GetConnectTimeout().AsDuration()
	}
	if got := timeout(envoyC.fetch(resource.ClusterType)); got == 7*time.Second {
		t.Errorf("the Envoy node got the gRPC override of c1")
	}
	if got := timeout(grpcC.fetch(resource.ClusterType, "c1")); got != 7*time.Second {
		t.Errorf("the gRPC node got c1 with connect timeout %v, want its override's 7s", got)
	}
	if got := testutil.ToFloat64(ts.metrics.snapshotResources.WithLabelValues("cds")); got != 1 {
		t.Errorf("sluice_xds_snapshot_resources{type=cds} = %v, want 1 (clusters counted by name)", got)
	}

	// The override goes: the gRPC node gets the shared cluster; the Envoy node gets nothing new.
	snap2 := m.snapshot(t)
	snap2.Clusters["c1"] = snap.Clusters["c1"]
	if err := ts.Publish(snap2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := timeout(grpcC.next(resource.ClusterType)); got == 7*time.Second {
		t.Errorf("the gRPC node kept the withdrawn override")
	}
	envoyC.noResponse()
}
