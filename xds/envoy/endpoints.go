package envoy

import (
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// EndpointMetadataNamespace is the filter_metadata namespace of an endpoint's workload and version;
// the access log reads them as %UPSTREAM_METADATA(sluice.dev:workload)%.
const EndpointMetadataNamespace = "sluice.dev"

// portEndpoints builds one ClusterLoadAssignment per subset of a Service port, named like its
// cluster. Every endpoint sits in a single locality of weight 1: grpc-go drops localities without a
// weight and NACKs a locality without an ID or an address listed twice (unmarshal_eds.go).
func portEndpoints(svc *ir.Service, port *ir.ServicePort) []*endpointv3.ClusterLoadAssignment {
	host := svc.Hostname()
	out := make([]*endpointv3.ClusterLoadAssignment, 0, len(port.Subsets))
	for _, ss := range port.Subsets {
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: ClusterName(port.Port, ss.Name, host)}
		if lbs := lbEndpoints(ss.Endpoints); len(lbs) > 0 {
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{
				Locality:            &corev3.Locality{},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints:         lbs,
			}}
		}
		out = append(out, cla)
	}
	return out
}

// lbEndpoints keeps the IR's order (address, then port) and drops repeated addresses, which grpc-go
// would reject; a repeat counts as ready if any copy is.
func lbEndpoints(eps []ir.Endpoint) []*endpointv3.LbEndpoint {
	out := make([]*endpointv3.LbEndpoint, 0, len(eps))
	seen := make(map[string]int, len(eps))
	for _, ep := range eps {
		key := net.JoinHostPort(ep.Address, strconv.FormatUint(uint64(ep.Port), 10))
		if i, dup := seen[key]; dup {
			if ep.Ready {
				out[i].HealthStatus = corev3.HealthStatus_HEALTHY
			}
			continue
		}
		seen[key] = len(out)
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ep.Address, ep.Port)}},
			HealthStatus:   corev3.HealthStatus_UNHEALTHY,
			Metadata:       endpointMetadata(ep),
		}
		if ep.Ready {
			lb.HealthStatus = corev3.HealthStatus_HEALTHY
		}
		out = append(out, lb)
	}
	return out
}

// endpointMetadata labels the endpoint with its workload and version for telemetry.
func endpointMetadata(ep ir.Endpoint) *corev3.Metadata {
	fields := map[string]*structpb.Value{}
	if ep.Workload != "" {
		fields["workload"] = structpb.NewStringValue(ep.Workload)
	}
	if ep.Version != "" {
		fields["version"] = structpb.NewStringValue(ep.Version)
	}
	if len(fields) == 0 {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{EndpointMetadataNamespace: {Fields: fields}}}
}
