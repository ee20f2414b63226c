package envoy

import (
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// TestTranslatorMatchesTranslate: for every golden input, a Translator's first and second
// translation equal Translate's, and the second returns the messages of the first.
func TestTranslatorMatchesTranslate(t *testing.T) {
	for name, path := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			want := translateGolden(t, name, path)
			tr := NewTranslator(goldenOptions[name])
			first, err := tr.Translate(readIR(t, path))
			if err != nil {
				t.Fatal(err)
			}
			assertSnapshotsEqual(t, want, first)
			second, err := tr.Translate(readIR(t, path))
			if err != nil {
				t.Fatal(err)
			}
			assertSnapshotsEqual(t, want, second)
			if changed := changedResources(first, second); len(changed) > 0 {
				t.Errorf("translating the same IR again gave new messages for %v", changed)
			}
		})
	}
}

// changedResources names the resources of b that are not the very messages of a.
func changedResources(a, b *Snapshot) []string {
	var out []string
	for f, ls := range b.Listeners {
		out = append(out, changedIn(string(f)+" listener", a.Listeners[f], ls)...)
	}
	out = append(out, changedIn("route", a.Routes, b.Routes)...)
	out = append(out, changedIn("cluster", a.Clusters, b.Clusters)...)
	out = append(out, changedIn("endpoints", a.Endpoints, b.Endpoints)...)
	out = append(out, changedIn("secret", a.Secrets, b.Secrets)...)
	slices.Sort(out)
	return out
}

func changedIn[M comparable](kind string, a, b map[string]M) []string {
	var out []string
	for name, m := range b {
		if old, ok := a[name]; !ok || old != m {
			out = append(out, kind+" "+name)
		}
	}
	return out
}

const (
	cartHost = "cart.shop.svc.cluster.local"
	coHost   = "checkout.shop.svc.cluster.local"
)

// twoServices is testService (checkout, subsets "" and v1) and a GRPC service cart that mirrors 5%
// to checkout's v1. change alters the copy of checkout's port.
func twoServices(change func(p *ir.ServicePort)) *ir.IR {
	in := mutated(change)
	in.Services = append(in.Services, ir.Service{
		Namespace: "shop",
		Name:      "cart",
		ClusterIP: "10.96.0.11",
		Ports: []ir.ServicePort{{
			Port:     9090,
			Protocol: ir.ProtocolGRPC,
			Subsets: []ir.Subset{
				{Name: "", Endpoints: []ir.Endpoint{{Address: "10.244.2.7", Port: 9090, Ready: true}}},
				{Name: "v1", Endpoints: []ir.Endpoint{{Address: "10.244.2.7", Port: 9090, Ready: true}}},
			},
			Routes: []ir.Route{{
				Name:         ir.DefaultRouteName,
				Destinations: []ir.Destination{{Subset: "v1", Weight: 100}},
				Mirror:       &ir.Mirror{Namespace: "shop", Service: "checkout", Port: 8080, Subset: "v1", Percent: 5},
			}},
		}},
	})
	return in
}

func cartResources() []string {
	return []string{
		"cluster " + ClusterName(9090, "", cartHost),
		"cluster " + ClusterName(9090, "v1", cartHost),
		"endpoints " + ClusterName(9090, "", cartHost),
		"endpoints " + ClusterName(9090, "v1", cartHost),
		"envoy listener " + EnvoyListenerName("10.96.0.11", 9090),
		"grpc listener " + APIListenerName(cartHost, 9090),
		"grpc listener " + ServerListenerName("10.244.2.7", 9090),
		"route " + RouteConfigName(cartHost, 9090),
	}
}

func translateBoth(t *testing.T, tr *Translator, in *ir.IR, opts Options) *Snapshot {
	t.Helper()
	want, wantErr := Translate(in, opts)
	got, err := tr.Translate(in)
	if errString(err) != errString(wantErr) {
		t.Fatalf("Translator: %v\nTranslate: %v", err, wantErr)
	}
	if err == nil {
		assertSnapshotsEqual(t, want, got)
	}
	return got
}

func TestTranslatorReusesUnchangedPorts(t *testing.T) {
	tr := NewTranslator(Options{})
	first := translateBoth(t, tr, twoServices(func(*ir.ServicePort) {}), Options{})

	// A weight change of checkout: checkout's port is built again, cart's is not.
	second := translateBoth(t, tr, twoServices(func(p *ir.ServicePort) {
		p.Subsets = append(p.Subsets, ir.Subset{Name: "v2", Endpoints: []ir.Endpoint{{Address: "10.244.1.6", Port: 8080, Ready: true}}})
		p.Routes[0].Destinations = []ir.Destination{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}}
	}), Options{})
	changed := changedResources(first, second)
	for _, name := range cartResources() {
		if slices.Contains(changed, name) {
			t.Errorf("%s is a new message, but cart did not change", name)
		}
	}
	for _, name := range []string{
		"route " + RouteConfigName(coHost, 8080),
		"cluster " + ClusterName(8080, "v1", coHost),
		"envoy listener " + EnvoyListenerName("10.96.0.10", 8080),
		"grpc listener " + APIListenerName(coHost, 8080),
	} {
		if !slices.Contains(changed, name) {
			t.Errorf("%s is the old message, but checkout's port changed", name)
		}
	}
	// The listeners that do not come from a port stay (the inbound L7 ports did not change), and
	// so does the gRPC server listener of checkout's endpoint, which depends only on its address.
	for _, name := range []string{
		"envoy listener " + VirtualInboundListener,
		"envoy listener " + VirtualOutboundListener,
		"cluster " + PassthroughCluster,
		"grpc listener " + ServerListenerName("10.244.1.5", 8080),
	} {
		if slices.Contains(changed, name) {
			t.Errorf("%s is a new message", name)
		}
	}
}

// TestTranslatorMirrorTarget: cart's inputs do not change, but whether its mirror target exists
// does: the Translator must not reuse cart's resources.
func TestTranslatorMirrorTarget(t *testing.T) {
	tr := NewTranslator(Options{})
	keep := func(*ir.ServicePort) {}
	noV1 := func(p *ir.ServicePort) {
		p.Subsets = []ir.Subset{p.Subsets[0], {Name: "v2", Endpoints: p.Subsets[1].Endpoints}}
		p.Routes[0].Destinations = []ir.Destination{{Subset: "v2", Weight: 100}}
	}
	translateBoth(t, tr, twoServices(keep), Options{})
	if _, err := tr.Translate(twoServices(noV1)); err == nil {
		t.Fatal("the Translator accepted a mirror to a subset that went away")
	}
	translateBoth(t, tr, twoServices(noV1), Options{}) // the same error as Translate
	translateBoth(t, tr, twoServices(keep), Options{})
}

// TestTranslatorOptions: other options build everything again; the same options (after defaults)
// keep it.
func TestTranslatorOptions(t *testing.T) {
	in := twoServices(func(*ir.ServicePort) {})
	tr := NewTranslator(Options{})
	first := translateBoth(t, tr, in, Options{})

	tr.SetOptions(Options{OutboundPort: DefaultOutboundPort})
	same := translateBoth(t, tr, in, Options{})
	if changed := changedResources(first, same); len(changed) > 0 {
		t.Errorf("the same options gave new messages for %v", changed)
	}

	opts := Options{AccessLog: true, ConnectTimeout: 3 * DefaultConnectTimeout}
	tr.SetOptions(opts)
	other := translateBoth(t, tr, in, opts)
	if changed := changedResources(first, other); len(changed) != countResources(other) {
		t.Errorf("other options reused messages: only %v are new", changed)
	}
	for name, c := range other.Clusters {
		if proto.Equal(c, first.Clusters[name]) {
			t.Errorf("cluster %q did not change with the connect timeout", name)
		}
	}
}

// TestTranslatorErrors: a warm Translator fails like Translate on every rejected input, including
// a port defined twice (whose second copy reuses the first's resources), and recovers after.
func TestTranslatorErrors(t *testing.T) {
	tr := NewTranslator(Options{})
	good := &ir.IR{Services: []ir.Service{testService}}
	translateBoth(t, tr, good, Options{})
	twice := &ir.IR{Services: []ir.Service{testService, testService}}
	translateBoth(t, tr, twice, Options{})
	otherIP := testService
	otherIP.Name = "checkout-copy"
	translateBoth(t, tr, &ir.IR{Services: []ir.Service{testService, otherIP}}, Options{})
	for _, in := range []*ir.IR{
		mutated(func(p *ir.ServicePort) { p.Routes[0].Destinations = []ir.Destination{{Subset: "v7", Weight: 100}} }),
		mutated(func(p *ir.ServicePort) { p.Policy = &ir.ClusterPolicy{LoadBalancer: "Fastest"} }),
		mutated(func(p *ir.ServicePort) { p.Subsets = p.Subsets[1:] }),
	} {
		translateBoth(t, tr, in, Options{})
	}
	translateBoth(t, tr, good, Options{})
}

// TestTranslatorInboundMTLS: the inbound listener is reused while the endpoints with chains of
// their own are the same, even though the IR's authorization is a new value, and built again when
// one's mode changes.
func TestTranslatorInboundMTLS(t *testing.T) {
	tr := NewTranslator(Options{})
	path := filepath.Join("testdata", "authz_envoy.in.yaml")
	first := translateBoth(t, tr, readIR(t, path), Options{})
	second := translateBoth(t, tr, readIR(t, path), Options{})
	if changed := changedResources(first, second); len(changed) != 0 {
		t.Errorf("nothing changed, but these are new messages: %v", changed)
	}
	in := readIR(t, path)
	in.Services[1].Ports[0].Subsets[0].Endpoints[0].MTLS = ir.MTLSStrict // audit: PERMISSIVE → STRICT
	third := translateBoth(t, tr, in, Options{})
	if !slices.Contains(changedResources(second, third), "envoy listener "+VirtualInboundListener) {
		t.Error("audit became STRICT, but the inbound listener is the old message")
	}
}
