package envoy

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// testService is a minimal HTTP service for tests that mutate the IR.
var testService = ir.Service{
	Namespace: "shop",
	Name:      "checkout",
	ClusterIP: "10.96.0.10",
	Ports: []ir.ServicePort{{
		Name:     "http",
		Port:     8080,
		Protocol: ir.ProtocolHTTP,
		Subsets: []ir.Subset{
			{Name: "", Endpoints: []ir.Endpoint{{Address: "10.244.1.5", Port: 8080, Ready: true}}},
			{Name: "v1", Endpoints: []ir.Endpoint{{Address: "10.244.1.5", Port: 8080, Ready: true}}},
		},
		Routes:  []ir.Route{{Name: "default", Destinations: []ir.Destination{{Subset: "v1", Weight: 100}}}},
		Sources: []ir.ObjectRef{{Kind: "TrafficPolicy", Namespace: "shop", Name: "checkout"}},
	}},
}

// mutated returns an IR holding a deep enough copy of testService changed by f.
func mutated(f func(p *ir.ServicePort)) *ir.IR {
	svc := testService
	svc.Ports = []ir.ServicePort{testService.Ports[0]}
	p := &svc.Ports[0]
	p.Subsets = append([]ir.Subset(nil), p.Subsets...)
	p.Routes = append([]ir.Route(nil), p.Routes...)
	f(p)
	return &ir.IR{Services: []ir.Service{svc}}
}

func TestTranslateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *ir.IR
		opts Options
		want string
	}{{
		name: "all weights zero",
		in:   mutated(func(p *ir.ServicePort) { p.Routes[0].Destinations = []ir.Destination{{Subset: "v1", Weight: 0}} }),
		want: `route "default": no destination with a weight above zero`,
	}, {
		name: "unknown subset",
		in:   mutated(func(p *ir.ServicePort) { p.Routes[0].Destinations = []ir.Destination{{Subset: "v7", Weight: 100}} }),
		want: `destination subset "v7" is not a subset of the port`,
	}, {
		name: "mTLS endpoint without identity",
		in: mutated(func(p *ir.ServicePort) {
			p.Subsets[0] = ir.Subset{Endpoints: []ir.Endpoint{{Address: "10.244.1.5", Port: 8080, Ready: true, MTLS: ir.MTLSStrict}}}
		}),
		want: `endpoint 10.244.1.5:8080 is STRICT but has no SPIFFE identity ("")`,
	}, {
		name: "mirror outside the mesh",
		in: mutated(func(p *ir.ServicePort) {
			p.Routes[0].Mirror = &ir.Mirror{Namespace: "shop", Service: "nope", Port: 80, Percent: 5}
		}),
		want: `mirror target shop/nope port 80 subset "" is not in the mesh`,
	}, {
		name: "bad regex",
		in: mutated(func(p *ir.ServicePort) {
			p.Routes[0].Match.Headers = []ir.HeaderMatch{{Name: "x", Regex: "("}}
		}),
		want: `header "x": invalid regex "("`,
	}, {
		name: "two header match kinds",
		in: mutated(func(p *ir.ServicePort) {
			p.Routes[0].Match.Headers = []ir.HeaderMatch{{Name: "x", Exact: "a", Prefix: "b"}}
		}),
		want: `more than one of exact, prefix and regex`,
	}, {
		name: "unknown load balancer",
		in:   mutated(func(p *ir.ServicePort) { p.Policy = &ir.ClusterPolicy{LoadBalancer: "Fastest"} }),
		want: `unknown load balancer "Fastest"`,
	}, {
		name: "no all-endpoints subset",
		in:   mutated(func(p *ir.ServicePort) { p.Subsets = p.Subsets[1:] }),
		want: `the all-endpoints subset is missing`,
	}, {
		name: "unknown protocol",
		in:   mutated(func(p *ir.ServicePort) { p.Protocol = "UDP" }),
		want: `unknown protocol "UDP"`,
	}, {
		name: "bad tracing collector",
		in:   &ir.IR{},
		opts: Options{TracingCollector: "collector"},
		want: `tracing collector "collector": want host:port`,
	}, {
		name: "cluster named like the xDS cluster",
		in:   &ir.IR{},
		opts: Options{XDSClusterName: PassthroughCluster},
		want: `cluster "PassthroughCluster" has the name of the bootstrap's xDS cluster`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Translate(tc.in, tc.opts)
			if err == nil {
				t.Fatal("Translate accepted the input")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if len(tc.in.Services) > 0 && !strings.Contains(err.Error(), "service shop/checkout port 8080 (from TrafficPolicy shop/checkout)") {
				t.Errorf("error %q does not name the port and its sources", err)
			}
		})
	}
}

func TestTranslateOptions(t *testing.T) {
	s, err := Translate(&ir.IR{Services: []ir.Service{testService}}, Options{OutboundPort: 16001, InboundPort: 16006, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Listeners[FlavourEnvoy][VirtualOutboundListener].GetAddress().GetSocketAddress().GetPortValue(); got != 16001 {
		t.Errorf("virtualOutbound port = %d", got)
	}
	if got := s.Listeners[FlavourEnvoy][VirtualInboundListener].GetAddress().GetSocketAddress().GetPortValue(); got != 16006 {
		t.Errorf("virtualInbound port = %d", got)
	}
	if got := s.Clusters[ClusterName(8080, "v1", "checkout.shop.svc.cluster.local")].GetConnectTimeout().AsDuration(); got != time.Second {
		t.Errorf("connect timeout = %v", got)
	}
	// Access log and tracing are off by default.
	if strings.Contains(mustYAML(t, s), "access_log") || strings.Contains(mustYAML(t, s), "tracing") {
		t.Error("access log or tracing present without being asked for")
	}
}

func mustYAML(t *testing.T, s *Snapshot) string {
	t.Helper()
	b, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
