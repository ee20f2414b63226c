package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// envoyProxy is the status of the proxy envoy-1.
func (ts *testServer) envoyProxy(t *testing.T) ProxyStatus {
	t.Helper()
	for _, p := range ts.Proxies() {
		if p.NodeID == "envoy-1" {
			return p
		}
	}
	t.Fatalf("no proxy envoy-1 in %+v", ts.Proxies())
	return ProxyStatus{}
}

// A NACK is recorded with its message and the rejected resources, OnNACK fires, and the proxy's
// status shows it until a response that carries those resources again is ACKed.
func TestNACKIsRecorded(t *testing.T) {
	nacks := make(chan NACK, 10)
	ts := startServer(t, Options{OnNACK: func(n NACK) { nacks <- n }})
	m := baseMesh()
	m.clusters = []string{"c1", "c2"}
	m.routes = map[string]string{"r1": "c1", "r2": "c1", "r3": "c1"}
	ts.publish(t, m)
	conn := ts.dial(t)

	// State of the world: the proxy accepts its first routes, then rejects an update of two.
	c := newSotwClient(t, conn, testNode("envoy-1", ""))
	good := c.fetch(resource.RouteType, "r1", "r2")
	m.routes["r1"], m.routes["r2"] = "c2", "c2"
	ts.publish(t, m)
	r := c.next(resource.RouteType)
	c.nack(r, good.GetVersionInfo(), "route r2: bad regex", "r1", "r2")
	var n NACK
	select {
	case n = <-nacks:
	case <-time.After(wait):
		t.Fatal("OnNACK was not called")
	}
	want := NACK{NodeID: "envoy-1", Flavour: envoy.FlavourEnvoy, TypeURL: resource.RouteType, Version: r.GetVersionInfo(),
		Nonce: r.GetNonce(), Resources: []string{"r1", "r2"}, Message: "route r2: bad regex"}
	if n.NodeID != want.NodeID || n.Flavour != want.Flavour || n.TypeURL != want.TypeURL || n.Version != want.Version ||
		n.Nonce != want.Nonce || !slices.Equal(n.Resources, want.Resources) || n.Message != want.Message || n.Time.IsZero() {
		t.Errorf("NACK = %+v, want %+v", n, want)
	}
	if got := ts.NACKs(); len(got) != 1 || got[0].Message != want.Message {
		t.Errorf("NACKs() = %+v", got)
	}
	if got := ts.envoyProxy(t).Types[resource.RouteType]; got.NACK == nil || got.NACK.Message != want.Message ||
		got.AckedVersion != good.GetVersionInfo() || got.SentVersion != r.GetVersionInfo() {
		t.Errorf("route status %+v, want the NACK, version %s ACKed, %s sent", got, good.GetVersionInfo(), r.GetVersionInfo())
	}
	if got := testutil.ToFloat64(ts.metrics.nacks.WithLabelValues("rds")); got != 1 {
		t.Errorf("sluice_xds_nacks_total{type=rds} = %v, want 1", got)
	}

	// Fixed: a response with only r1 does not clear the NACK of r1 and r2; one with both does.
	m.routes["r1"] = "c1"
	ts.publish(t, m)
	r = c.next(resource.RouteType)
	c.ack(r, "r1", "r2")
	eventually(t, "the ACK of r1", func() bool {
		return ts.envoyProxy(t).Types[resource.RouteType].AckedVersion == r.GetVersionInfo()
	})
	if ts.envoyProxy(t).Types[resource.RouteType].NACK == nil {
		t.Error("the ACK of r1 alone cleared the NACK of r1 and r2")
	}
	m.routes["r1"], m.routes["r2"] = "c2", "c1"
	ts.publish(t, m)
	r = c.next(resource.RouteType)
	if got := responseNames(t, r); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("pushed %v, want [r1 r2]", got)
	}
	c.ack(r, "r1", "r2")
	eventually(t, "the NACK to clear", func() bool { return ts.envoyProxy(t).Types[resource.RouteType].NACK == nil })

	// Delta: the names come from the rejected response (by nonce).
	d := newDeltaClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	d.subscribe(resource.ClusterType, "c1")
	d.nack(d.next(resource.ClusterType), "cluster c1: unsupported lb policy")
	select {
	case n = <-nacks:
	case <-time.After(wait):
		t.Fatal("OnNACK was not called for the delta NACK")
	}
	if n.NodeID != "grpc-1" || n.Flavour != envoy.FlavourGRPC || n.TypeURL != resource.ClusterType ||
		!slices.Equal(n.Resources, []string{"c1"}) || n.Message != "cluster c1: unsupported lb policy" {
		t.Errorf("delta NACK = %+v", n)
	}
	if got := len(ts.NACKs()); got != 2 {
		t.Errorf("%d NACKs recorded, want 2", got)
	}
}

func TestNACKHistoryIsBounded(t *testing.T) {
	ts := startServer(t, Options{NACKHistory: 3})
	for i := range 5 {
		ts.proxies.recordNACK(NACK{Message: string(rune('a' + i))})
	}
	var got []string
	for _, n := range ts.NACKs() {
		got = append(got, n.Message)
	}
	if !slices.Equal(got, []string{"c", "d", "e"}) {
		t.Errorf("NACKs() = %v, want the 3 most recent, oldest first", got)
	}
}

func TestDebugHandler(t *testing.T) {
	ts := startServer(t, Options{})
	ts.publish(t, baseMesh())
	conn := ts.dial(t)
	c := newSotwClient(t, conn, testNode("envoy-1", ""))
	cds := c.fetch(resource.ClusterType)
	c.subscribe(resource.ListenerType)
	c.nack(c.next(resource.ListenerType), "", "listener l-envoy: port in use")
	d := newDeltaClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	d.subscribe(resource.ClusterType, "c1")
	d.ack(d.next(resource.ClusterType))
	eventually(t, "both proxies to show their state", func() bool {
		p := ts.Proxies()
		return len(p) == 2 && p[0].Types[resource.ListenerType].NACK != nil && p[1].Types[resource.ClusterType].AckedVersion != ""
	})

	get := func(path string) []byte {
		t.Helper()
		rec := httptest.NewRecorder()
		ts.DebugHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		return rec.Body.Bytes()
	}

	// The JSON as a kubectl plugin reads it, without this package's types.
	var page struct {
		Proxies []struct {
			NodeID         string    `json:"nodeID"`
			Flavour        string    `json:"flavour"`
			Delta          bool      `json:"delta"`
			ConnectedSince time.Time `json:"connectedSince"`
			Types          map[string]struct {
				SentVersion  string `json:"sentVersion"`
				AckedVersion string `json:"ackedVersion"`
				NACK         *struct {
					Message   string   `json:"message"`
					Version   string   `json:"version"`
					Resources []string `json:"resources"`
				} `json:"nack"`
			} `json:"types"`
		} `json:"proxies"`
	}
	if err := json.Unmarshal(get(DebugProxiesPath), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Proxies) != 2 {
		t.Fatalf("%d proxies, want 2", len(page.Proxies))
	}
	e, g := page.Proxies[0], page.Proxies[1]
	if e.NodeID != "envoy-1" || e.Flavour != "envoy" || e.Delta || e.ConnectedSince.IsZero() {
		t.Errorf("envoy proxy %+v", e)
	}
	if got := e.Types[resource.ClusterType]; got.AckedVersion != cds.GetVersionInfo() || got.SentVersion != cds.GetVersionInfo() || got.NACK != nil {
		t.Errorf("envoy clusters %+v, want version %s ACKed", got, cds.GetVersionInfo())
	}
	if got := e.Types[resource.ListenerType]; got.NACK == nil || got.NACK.Message != "listener l-envoy: port in use" ||
		!slices.Equal(got.NACK.Resources, []string{"l-envoy"}) || got.AckedVersion != "" {
		t.Errorf("envoy listeners %+v, want the NACK", got)
	}
	if g.NodeID != "grpc-1" || g.Flavour != "grpc" || !g.Delta || g.Types[resource.ClusterType].AckedVersion == "" {
		t.Errorf("grpc proxy %+v", g)
	}

	var nacks struct {
		NACKs []NACK `json:"nacks"`
	}
	if err := json.Unmarshal(get(DebugNACKsPath), &nacks); err != nil {
		t.Fatal(err)
	}
	if len(nacks.NACKs) != 1 || nacks.NACKs[0].NodeID != "envoy-1" {
		t.Errorf("nacks page %+v", nacks)
	}
}

func TestUserAgent(t *testing.T) {
	for want, n := range map[string]*corev3.Node{
		"":               nil,
		"envoy":          {UserAgentName: "envoy"},
		"gRPC Go/1.85.0": {UserAgentName: "gRPC Go", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.85.0"}},
		"envoy/1.37.2": {UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 37, Patch: 2},
		}}},
	} {
		if got := userAgent(n); got != want {
			t.Errorf("userAgent(%v) = %q, want %q", n, got, want)
		}
	}
}
