package analysis

import (
	"fmt"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The built-in queries read what the mesh's data plane exposes for the canary's pods, whichever
// kind they run (docs/data-plane-metrics.md):
//
//   - proxyless gRPC servers: gRPC's OpenTelemetry metrics, grpc_server_call_duration_seconds
//     (a histogram with grpc_method and grpc_status labels);
//   - Envoy sidecars: Envoy's stats of the inbound cluster InboundPassthroughCluster, through
//     which the sidecar hands every inbound HTTP and gRPC request to the application.
//
// Each query computes the value from one family and falls back to the other with `or`: both sides
// are aggregated to an empty label set, so the gRPC value wins when both exist and Envoy's is used
// when the canary's pods have no gRPC series.
//
// The canary is selected by target labels the scrape configuration adds from pod metadata:
// namespace and pod_template_hash (config/prometheus/).
const (
	canarySelector       = `namespace="{{ .Namespace }}",pod_template_hash="{{ .CanaryRevision }}"`
	envoyInboundSelector = canarySelector + `,cluster_name="InboundPassthroughCluster"`

	// grpcServerFaults are the gRPC statuses that mean the server failed: those that
	// google.rpc.Code's HTTP mapping (google/rpc/code.proto) sends to 5xx, as Envoy's does. The
	// others (CANCELLED, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED...) map to 4xx: the
	// caller's doing, which must not roll a canary back.
	grpcServerFaults = `UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS`

	window = `[{{ .Interval }}]`

	grpcCalls        = `sum(rate(grpc_server_call_duration_seconds_count{` + canarySelector + `}` + window + `))`
	grpcFaults       = `sum(rate(grpc_server_call_duration_seconds_count{` + canarySelector + `,grpc_status=~"` + grpcServerFaults + `"}` + window + `))`
	envoyCalls       = `sum(rate(envoy_cluster_upstream_rq_xx{` + envoyInboundSelector + `}` + window + `))`
	envoyFaults      = `sum(rate(envoy_cluster_upstream_rq_xx{` + envoyInboundSelector + `,envoy_response_code_class="5"}` + window + `))`
	grpcDurationP99  = `histogram_quantile(0.99, sum by (le) (rate(grpc_server_call_duration_seconds_bucket{` + canarySelector + `}` + window + `)))`
	envoyDurationP99 = `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{` + envoyInboundSelector + `}` + window + `)))`
)

// SuccessRateQuery is request-success-rate: the percentage (0-100) of the canary's calls over the
// interval that did not fail with a server fault. "faults or vector(0)" reads 0 faults when no
// fault series exists (the usual case); no calls in the interval give NaN (0/0), and no series of
// either family gives no data (vector(0) divided by nothing is nothing).
const SuccessRateQuery = `100 * (1 - (` + grpcFaults + ` or vector(0)) / ` + grpcCalls + `)
or
100 * (1 - (` + envoyFaults + ` or vector(0)) / ` + envoyCalls + `)`

// DurationQuery is request-duration: the canary's 99th percentile call duration over the interval,
// in milliseconds (gRPC records seconds, Envoy milliseconds).
const DurationQuery = grpcDurationP99 + ` * 1000
or
` + envoyDurationP99

// RequestCountQuery is how many calls the canary completed in the interval, for
// spec.analysis.minRequests.
const RequestCountQuery = `sum(increase(grpc_server_call_duration_seconds_count{` + canarySelector + `}` + window + `))
or
sum(increase(envoy_cluster_upstream_rq_xx{` + envoyInboundSelector + `}` + window + `))`

// TemplateQuery returns the query template of a built-in metric template.
func TemplateQuery(t meshv1alpha1.MetricTemplate) (string, error) {
	switch t {
	case meshv1alpha1.MetricRequestSuccessRate:
		return SuccessRateQuery, nil
	case meshv1alpha1.MetricRequestDuration:
		return DurationQuery, nil
	}
	return "", fmt.Errorf("unknown template %q: want %s or %s", t, meshv1alpha1.MetricRequestSuccessRate, meshv1alpha1.MetricRequestDuration)
}
