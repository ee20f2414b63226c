package server

import (
	"context"
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// wait bounds every wait for a message or a condition; tests finish long before it in practice.
const wait = 5 * time.Second

type testServer struct {
	*Server
	reg  *prometheus.Registry
	addr string
}

// startServer runs a Server on a loopback port until the test ends.
func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Logger.GetSink() == nil {
		opts.Logger = funcr.New(func(prefix, args string) {}, funcr.Options{})
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(wait):
			t.Error("Serve did not return after its context ended")
		}
	})
	return &testServer{Server: s, reg: reg, addr: lis.Addr().String()}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func (ts *testServer) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return dialAddr(t, ts.addr)
}

func dialAddr(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (ts *testServer) publish(t *testing.T, m mesh) {
	t.Helper()
	if err := ts.Publish(m.snapshot(t), time.Now()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func testNode(id string, f envoy.Flavour) *corev3.Node {
	n := &corev3.Node{Id: id, Cluster: "test", UserAgentName: "test-client"}
	if f != "" {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.NodeMetadataFlavour: structpb.NewStringValue(string(f)),
		}}
	}
	return n
}

// sotwClient drives a state-of-the-world ADS stream by hand. The node goes on the first request
// only, as Envoy and grpc-go do.
type sotwClient struct {
	t         *testing.T
	node      *corev3.Node
	sentNode  bool
	stream    grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	responses chan *discovery.DiscoveryResponse
	ended     chan error
	cancel    context.CancelFunc
}

func newSotwClient(t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &sotwClient{t: t, node: node, stream: st, responses: make(chan *discovery.DiscoveryResponse, 100), ended: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				c.ended <- err
				return
			}
			c.responses <- r
		}
	}()
	return c
}

func (c *sotwClient) send(r *discovery.DiscoveryRequest) {
	c.t.Helper()
	if !c.sentNode {
		r.Node, c.sentNode = c.node, true
	}
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// subscribe asks for typeURL (names empty: wildcard).
func (c *sotwClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// ack accepts resp, keeping the subscription names.
func (c *sotwClient) ack(resp *discovery.DiscoveryResponse, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names})
}

// nack rejects resp; lastGood is the version the client keeps.
func (c *sotwClient) nack(resp *discovery.DiscoveryResponse, lastGood, msg string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: lastGood, ResponseNonce: resp.GetNonce(),
		ResourceNames: names, ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
}

// next returns the next response, which must be of typeURL.
func (c *sotwClient) next(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.responses:
		if r.GetTypeUrl() != typeURL {
			c.t.Fatalf("got a %s response (%v), want %s", r.GetTypeUrl(), responseNames(c.t, r), typeURL)
		}
		return r
	case err := <-c.ended:
		c.t.Fatalf("stream ended waiting for %s: %v", typeURL, err)
	case <-time.After(wait):
		c.t.Fatalf("no %s response within %s", typeURL, wait)
	}
	return nil
}

// fetch subscribes to typeURL, waits for the response and ACKs it.
func (c *sotwClient) fetch(typeURL string, names ...string) *discovery.DiscoveryResponse {
	c.t.Helper()
	c.subscribe(typeURL, names...)
	r := c.next(typeURL)
	c.ack(r, names...)
	return r
}

// noResponse fails if a response is waiting.
func (c *sotwClient) noResponse() {
	c.t.Helper()
	select {
	case r := <-c.responses:
		c.t.Fatalf("unexpected %s response %v", r.GetTypeUrl(), responseNames(c.t, r))
	default:
	}
}

// deltaClient drives a delta ADS stream by hand.
type deltaClient struct {
	t         *testing.T
	node      *corev3.Node
	sentNode  bool
	stream    grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
	responses chan *discovery.DeltaDiscoveryResponse
	ended     chan error
}

func newDeltaClient(t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, node: node, stream: st, responses: make(chan *discovery.DeltaDiscoveryResponse, 100), ended: make(chan error, 1)}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				c.ended <- err
				return
			}
			c.responses <- r
		}
	}()
	return c
}

func (c *deltaClient) send(r *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !c.sentNode {
		r.Node, c.sentNode = c.node, true
	}
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (c *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}

func (c *deltaClient) nack(r *discovery.DeltaDiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
}

func (c *deltaClient) next(typeURL string) *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.responses:
		if r.GetTypeUrl() != typeURL {
			c.t.Fatalf("got a %s delta response, want %s", r.GetTypeUrl(), typeURL)
		}
		return r
	case err := <-c.ended:
		c.t.Fatalf("stream ended waiting for %s: %v", typeURL, err)
	case <-time.After(wait):
		c.t.Fatalf("no %s delta response within %s", typeURL, wait)
	}
	return nil
}

// decode unmarshals the resources of a response, by name.
func decode(t *testing.T, anys []*anypb.Any) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, a := range anys {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("decoding %s: %v", a.GetTypeUrl(), err)
		}
		out[cache.GetResourceName(m)] = m
	}
	return out
}

func responseNames(t *testing.T, r *discovery.DiscoveryResponse) []string {
	return slices.Sorted(maps.Keys(decode(t, r.GetResources())))
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	slices.Sort(out)
	return out
}

// eventually waits for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// histogramCount is the number of observations of a histogram with the given labels.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) uint64 {
	t.Helper()
	return metricOf(t, reg, name, labels).GetHistogram().GetSampleCount()
}

// metricOf is the series of the metric name with the given labels; nil when there is none (its
// getters then read zero).
func metricOf(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m
			}
		}
	}
	return nil
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
