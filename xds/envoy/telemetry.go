package envoy

import (
	"fmt"
	"net"
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcedetectorsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/resource_detectors/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Telemetry: the access log and tracing of Envoy's HTTP connection managers, and the stats tags of
// the bootstrap. docs/xds.md describes what each produces.

// Environment variables of the Envoy sidecar container that name the local workload; Envoy cannot
// read node metadata in an access log, and listeners are shared by every node.
const (
	EnvWorkload = "SLUICE_WORKLOAD"
	EnvVersion  = "SLUICE_VERSION"
)

// Traffic directions, as logged.
const (
	directionOutbound = "outbound"
	directionInbound  = "inbound"
)

// accessLogFields is the JSON access log format common to both directions.
var accessLogFields = map[string]string{
	"start_time":                "%START_TIME%",
	"method":                    "%REQ(:METHOD)%",
	"path":                      "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"authority":                 "%REQ(:AUTHORITY)%",
	"protocol":                  "%PROTOCOL%",
	"response_code":             "%RESPONSE_CODE%",
	"response_flags":            "%RESPONSE_FLAGS%",
	"bytes_received":            "%BYTES_RECEIVED%",
	"bytes_sent":                "%BYTES_SENT%",
	"duration_ms":               "%DURATION%",
	"upstream_cluster":          "%UPSTREAM_CLUSTER%",
	"upstream_host":             "%UPSTREAM_HOST%",
	"downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
	"request_id":                "%REQ(X-REQUEST-ID)%",
	"traceparent":               "%REQ(TRACEPARENT)%",
}

// accessLog writes one JSON object per request to stdout. Outbound, this node is the source and
// the upstream endpoint's metadata names the destination; inbound, this node is the destination
// and the source is unknown until workload identity (ZeroTrust) lands.
func accessLog(direction string) []*accesslogv3.AccessLog {
	fields := map[string]*structpb.Value{"direction": structpb.NewStringValue(direction)}
	for k, v := range accessLogFields {
		fields[k] = structpb.NewStringValue(v)
	}
	local := func(prefix string) {
		fields[prefix+"_workload"] = structpb.NewStringValue("%ENVIRONMENT(" + EnvWorkload + ")%")
		fields[prefix+"_version"] = structpb.NewStringValue("%ENVIRONMENT(" + EnvVersion + ")%")
	}
	if direction == directionOutbound {
		local("source")
		fields["destination_workload"] = structpb.NewStringValue("%UPSTREAM_METADATA(" + EndpointMetadataNamespace + ":workload)%")
		fields["destination_version"] = structpb.NewStringValue("%UPSTREAM_METADATA(" + EndpointMetadataNamespace + ":version)%")
	} else {
		local("destination")
	}
	return []*accesslogv3.AccessLog{{
		Name: "envoy.access_loggers.stdout",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: toAny(&streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}},
			}},
		})},
	}}
}

// tracing sends spans to the collector cluster with the OpenTelemetry tracer, which propagates W3C
// trace context (traceparent/tracestate). The service name comes from OTEL_RESOURCE_ATTRIBUTES in
// the sidecar's environment, since the listener is shared by every workload.
func tracing() *hcmv3.HttpConnectionManager_Tracing {
	return &hcmv3.HttpConnectionManager_Tracing{
		Provider: &tracev3.Tracing_Http{
			Name: "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(&tracev3.OpenTelemetryConfig{
				GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: TracingCluster},
				}},
				ResourceDetectors: []*corev3.TypedExtensionConfig{{
					Name:        "envoy.tracers.opentelemetry.resource_detectors.environment",
					TypedConfig: toAny(&resourcedetectorsv3.EnvironmentResourceDetectorConfig{}),
				}},
			})},
		},
	}
}

// tracingCluster reaches the OTLP/gRPC collector at host:port.
func tracingCluster(collector string, opts Options) (*clusterv3.Cluster, error) {
	host, portStr, err := net.SplitHostPort(collector)
	if err != nil {
		return nil, fmt.Errorf("tracing collector %q: want host:port: %w", collector, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 || host == "" {
		return nil, fmt.Errorf("tracing collector %q: want host:port with a port from 1 to 65535", collector)
	}
	return hostCluster(TracingCluster, host, uint32(port), true, opts.ConnectTimeout), nil
}

// Prometheus labels that Envoy extracts from our cluster-name scheme outbound|<port>|<subset>|<host>.
// Envoy's own envoy.cluster_name would stop at the first dot of the hostname, so default tags are
// off and the ones we keep are listed by name (a name alone selects Envoy's built-in regex).
const (
	TagClusterName         = "cluster_name"
	TagDestinationService  = "destination_service"
	TagDestinationPort     = "destination_port"
	TagDestinationSubset   = "destination_subset"
	TagSourceWorkload      = "source_workload"
	TagSourceVersion       = "source_version"
	TagSourceNamespace     = "source_namespace"
	clusterStatHost        = `[^|]+?\.svc\.cluster\.local`
	clusterStatOutboundPre = `^cluster\.outbound\|`
)

// builtinTags are Envoy's default tag extractors that our names do not break: HTTP connection
// manager and TCP proxy stat prefixes have no dots, listener names are address_port.
var builtinTags = []string{
	"envoy.http_conn_manager_prefix",
	"envoy.listener_address",
	"envoy.response_code",
	"envoy.response_code_class",
	"envoy.tcp_prefix",
}

// statsTags lists the bootstrap's tag specifiers: the source from the node, the destination from
// the cluster name.
func statsTags(workload, version, namespace string) []*metricsv3.TagSpecifier {
	var tags []*metricsv3.TagSpecifier
	for _, n := range builtinTags {
		tags = append(tags, &metricsv3.TagSpecifier{TagName: n})
	}
	regex := func(name, re string) {
		tags = append(tags, &metricsv3.TagSpecifier{TagName: name, TagValue: &metricsv3.TagSpecifier_Regex{Regex: re}})
	}
	// The first group is cut from the stat name, the second (if any) is the value. Matches may
	// overlap: Envoy cuts after all specifiers have run.
	regex(TagClusterName, `^cluster\.((outbound\|\d+\|[^|]*\|`+clusterStatHost+`|[^.]+)\.)`)
	regex(TagDestinationPort, clusterStatOutboundPre+`(\d+)\|`)
	regex(TagDestinationSubset, clusterStatOutboundPre+`\d+\|([^|]*)\|`)
	regex(TagDestinationService, clusterStatOutboundPre+`\d+\|[^|]*\|(`+clusterStatHost+`)\.`)
	fixed := func(name, v string) {
		if v != "" {
			tags = append(tags, &metricsv3.TagSpecifier{TagName: name, TagValue: &metricsv3.TagSpecifier_FixedValue{FixedValue: v}})
		}
	}
	fixed(TagSourceWorkload, workload)
	fixed(TagSourceVersion, version)
	fixed(TagSourceNamespace, namespace)
	return tags
}
