package envoy

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// mtlsMesh is services HTTP Services of pods STRICT pods each (one port 8080 → 8080, one service
// account per Service), with an authorization rule on every pod when authz is set.
func mtlsMesh(services, pods int, authz bool) *ir.IR {
	in := &ir.IR{}
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		id := fmt.Sprintf("spiffe://cluster.local/ns/bench/sa/%s", name)
		port := ir.ServicePort{
			Name: "http", Port: 8080, Protocol: ir.ProtocolHTTP, Identities: []string{id},
			Routes: []ir.Route{{Name: ir.DefaultRouteName, Destinations: []ir.Destination{{Subset: ir.AllEndpoints, Weight: 100}}}},
		}
		all := ir.Subset{Name: ir.AllEndpoints}
		for p := range pods {
			ep := ir.Endpoint{
				Address: fmt.Sprintf("10.%d.%d.%d", 1+s/250, s%250, 1+p), Port: 8080, Ready: true,
				Workload: name, MTLS: ir.MTLSStrict, Identity: id,
			}
			if authz {
				ep.Authorization = &ir.Authorization{
					Source: ir.ObjectRef{Kind: "ZeroTrust", Namespace: "bench", Name: "bench"},
					Policies: []ir.AuthorizationPolicy{{
						Name:       "callers",
						Principals: []ir.StringMatch{{Prefix: "spiffe://cluster.local/ns/bench/sa/"}},
						Paths:      []ir.StringMatch{{Prefix: "/api/"}, {Exact: "/healthz"}},
						Methods:    []string{"GET", "POST"},
					}},
				}
			}
			all.Endpoints = append(all.Endpoints, ep)
		}
		port.Subsets = []ir.Subset{all}
		in.Services = append(in.Services, ir.Service{
			Namespace: "bench", Name: name, ClusterIP: fmt.Sprintf("10.96.%d.%d", s/250, 1+s%250), Ports: []ir.ServicePort{port},
		})
	}
	return in
}

// BenchmarkTranslateMTLS translates a mesh of 250 Services × 4 pods, all STRICT, from scratch
// (Translate, then Validate as Publish does), and reports the size of the shared inbound listener
// every sidecar receives.
func BenchmarkTranslateMTLS(b *testing.B) {
	for _, tc := range []struct {
		name  string
		authz bool
	}{{"strict", false}, {"strict+rules", true}} {
		b.Run(tc.name, func(b *testing.B) {
			in := mtlsMesh(250, 4, tc.authz)
			var s *Snapshot
			cpu := cpuTime(b)
			for b.Loop() {
				var err error
				if s, err = Translate(in, Options{}); err != nil {
					b.Fatal(err)
				}
				if err := s.Validate(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
			l := s.Listeners[FlavourEnvoy][VirtualInboundListener]
			b.ReportMetric(float64(len(l.GetFilterChains())), "inbound-chains")
			b.ReportMetric(float64(proto.Size(l)), "inbound-bytes")
		})
	}
}

// BenchmarkTranslatorPodChange is one pod of that mesh becoming not ready, then ready again, with a
// Translator: the changed port and the inbound listener are built again, the rest is reused.
func BenchmarkTranslatorPodChange(b *testing.B) {
	in := mtlsMesh(250, 4, true)
	t := NewTranslator(Options{})
	if _, err := t.Translate(in); err != nil {
		b.Fatal(err)
	}
	ep := &in.Services[0].Ports[0].Subsets[0].Endpoints[0]
	cpu := cpuTime(b)
	for b.Loop() {
		ep.Ready = !ep.Ready
		if _, err := t.Translate(in); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// cpuTime is the CPU time (user and system) the process has used so far. On a shared machine
// ns/op counts the time spent waiting for a core too; cpu-ms/op does not (it includes the garbage
// collector's work on other threads).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
