package envoy

import (
	"errors"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// BootstrapOptions describe one Envoy sidecar: where the xDS server is and who the pod is.
type BootstrapOptions struct {
	// XDSAddress is the host name or IP of the xDS server; XDSPort its gRPC port. Both required.
	XDSAddress string
	XDSPort    uint32
	// XDSClusterName names the static cluster for the xDS server (default "sluice-xds").
	XDSClusterName string

	// The pod; PodIP, PodName and Namespace are required.
	PodIP          string
	PodName        string
	Namespace      string
	Workload       string
	Version        string
	ServiceAccount string

	// AdminPort is Envoy's admin port, bound to 127.0.0.1 only (default 15000).
	AdminPort uint32
	// StatsPort serves /stats/prometheus on every address, for scraping (default 15090).
	StatsPort uint32
	// ConnectTimeout bounds connecting to the xDS server (default 5s).
	ConnectTimeout time.Duration
}

// Bootstrap defaults and the names of its static resources.
const (
	DefaultAdminPort    = 15000
	DefaultStatsPort    = 15090
	AdminCluster        = "sluice-admin"
	PrometheusListener  = "sluice-prometheus"
	prometheusStatsPath = "/stats/prometheus"
)

// Bootstrap is the Envoy sidecar's startup config: a node that says who it is, listeners and
// clusters over one ADS stream to the xDS server, an admin interface on localhost only, and
// Prometheus stats tagged with the source (this node) and destination (from cluster names).
func Bootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if o.XDSAddress == "" || o.XDSPort == 0 {
		return nil, errors.New("bootstrap: the xDS server address and port are required")
	}
	if o.PodIP == "" || o.PodName == "" || o.Namespace == "" {
		return nil, errors.New("bootstrap: the pod IP, name and namespace are required")
	}
	if o.XDSClusterName == "" {
		o.XDSClusterName = DefaultXDSClusterName
	}
	if o.AdminPort == 0 {
		o.AdminPort = DefaultAdminPort
	}
	if o.StatsPort == 0 {
		o.StatsPort = DefaultStatsPort
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	ads := adsConfigSource()
	xds := hostCluster(o.XDSClusterName, o.XDSAddress, o.XDSPort, false, o.ConnectTimeout)
	// The ADS stream is long-lived: keepalives notice a dead server behind a NAT or load balancer.
	xds.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
				ConnectionKeepalive: &corev3.KeepaliveSettings{Interval: duration(30 * time.Second), Timeout: duration(10 * time.Second)},
			}},
		}},
	})}
	return &bootstrapv3.Bootstrap{
		Node: bootstrapNode(o),
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{prometheusListener(o.StatsPort)},
			Clusters: []*clusterv3.Cluster{
				xds,
				hostCluster(AdminCluster, "127.0.0.1", o.AdminPort, false, o.ConnectTimeout),
			},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: o.XDSClusterName},
				}}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads,
			CdsConfig: adsConfigSource(),
		},
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", o.AdminPort)},
		StatsConfig: &metricsv3.StatsConfig{
			StatsTags:         statsTags(o.Workload, o.Version, o.Namespace),
			UseAllDefaultTags: wrapperspb.Bool(false),
		},
	}, nil
}

// bootstrapNode is the node contract of docs/xds.md.
func bootstrapNode(o BootstrapOptions) *corev3.Node {
	md := map[string]*structpb.Value{NodeMetadataFlavour: structpb.NewStringValue(string(FlavourEnvoy))}
	for k, v := range map[string]string{
		NodeMetadataNamespace:      o.Namespace,
		NodeMetadataPod:            o.PodName,
		NodeMetadataWorkload:       o.Workload,
		NodeMetadataVersion:        o.Version,
		NodeMetadataServiceAccount: o.ServiceAccount,
	} {
		if v != "" {
			md[k] = structpb.NewStringValue(v)
		}
	}
	cluster := o.Namespace
	if o.Workload != "" {
		cluster = o.Workload + "." + o.Namespace
	}
	return &corev3.Node{
		Id:       NodeID(FlavourEnvoy, o.PodIP, o.PodName, o.Namespace),
		Cluster:  cluster,
		Metadata: &structpb.Struct{Fields: md},
	}
}

// prometheusListener exposes only the admin interface's Prometheus page, so the admin port itself
// can stay on localhost.
func prometheusListener(port uint32) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "prometheus",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: PrometheusListener,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    PrometheusListener,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "prometheus",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: prometheusStatsPath}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: AdminCluster},
					}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	return &listenerv3.Listener{
		Name:         PrometheusListener,
		Address:      socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Name: PrometheusListener, Filters: []*listenerv3.Filter{hcmFilter(hcm)}}},
	}
}
