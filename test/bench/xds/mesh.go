package main

import (
	"fmt"
	"net/netip"

	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// The benchmark mesh: services svc-0000.bench … each with one GRPC port, the all-endpoints subset
// plus v1 and v2, and a default route that splits between v1 and v2. Addresses come from the
// documentation ranges (RFC 5737): nothing ever dials them.

const (
	benchNamespace = "bench"
	servicePort    = 8080
	// endpointsPerSubset endpoints in v1 and in v2; the all-endpoints subset holds both.
	endpointsPerSubset = 2
	// changedService is the index of the service whose route weights every push changes.
	changedService = 0
)

// initialWeight is v1's weight before the first push (v2 gets the rest).
const initialWeight = 90

// pushWeight is v1's weight after push i (1-based): 80, 70, 60, 50, 40, … never below 10.
func pushWeight(i int) uint32 {
	return uint32(max(initialWeight-10*i, 10))
}

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

func hostname(i int) string { return envoy.ServiceHostname(benchNamespace, serviceName(i)) }

// docAddrs are the 508 usable addresses of 192.0.2.0/24 and 198.51.100.0/24.
var docAddrs = func() []string {
	var out []string
	for _, p := range []string{"192.0.2.0", "198.51.100.0"} {
		a := netip.MustParseAddr(p)
		for range 254 {
			a = a.Next()
			out = append(out, a.String())
		}
	}
	return out
}()

// endpoint k of all the mesh's endpoints: the address cycles through docAddrs and the port moves
// on after each cycle, so every (address, port) pair is distinct.
func endpoint(k int, version string, svc int) ir.Endpoint {
	return ir.Endpoint{
		Address:  docAddrs[k%len(docAddrs)],
		Port:     uint32(20000 + k/len(docAddrs)),
		Ready:    true,
		Workload: serviceName(svc),
		Version:  version,
	}
}

// buildIR is the mesh with v1 of changedService at weight v1Weight (every other service keeps
// initialWeight).
func buildIR(services int, v1Weight uint32) *ir.IR {
	out := &ir.IR{Services: make([]ir.Service, 0, services)}
	for i := range services {
		k := i * 2 * endpointsPerSubset
		var v1, v2 []ir.Endpoint
		for j := range endpointsPerSubset {
			v1 = append(v1, endpoint(k+j, "v1", i))
			v2 = append(v2, endpoint(k+endpointsPerSubset+j, "v2", i))
		}
		all := append(append([]ir.Endpoint{}, v1...), v2...)
		w := uint32(initialWeight)
		if i == changedService {
			w = v1Weight
		}
		out.Services = append(out.Services, ir.Service{
			Namespace: benchNamespace,
			Name:      serviceName(i),
			ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, 1+i%250),
			Ports: []ir.ServicePort{{
				Name:     "grpc",
				Port:     servicePort,
				Protocol: ir.ProtocolGRPC,
				Subsets: []ir.Subset{
					{Name: ir.AllEndpoints, Endpoints: all},
					{Name: "v1", Endpoints: v1},
					{Name: "v2", Endpoints: v2},
				},
				Routes: []ir.Route{{
					Name:         ir.DefaultRouteName,
					Destinations: []ir.Destination{{Subset: "v1", Weight: w}, {Subset: "v2", Weight: 100 - w}},
				}},
			}},
		})
	}
	return out
}

// buildSnapshot runs the real translation and validation on the mesh. tr is the scenario's
// Translator, as the reconciler keeps one: it returns the same messages for unchanged ports.
func buildSnapshot(tr *envoy.Translator, services int, v1Weight uint32) (*envoy.Snapshot, error) {
	snap, err := tr.Translate(buildIR(services, v1Weight))
	if err != nil {
		return nil, fmt.Errorf("translating the benchmark mesh: %w", err)
	}
	if err := snap.Validate(); err != nil {
		return nil, fmt.Errorf("validating the benchmark mesh: %w", err)
	}
	return snap, nil
}
