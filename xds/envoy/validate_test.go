package envoy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/xds/ir"
)

const (
	checkoutRoutes = "checkout.shop.svc.cluster.local:8080"
	checkoutV1     = "outbound|8080|v1|checkout.shop.svc.cluster.local"
	checkoutV2     = "outbound|8080|v2|checkout.shop.svc.cluster.local"
)

// validSnapshot is the header_route golden snapshot, which Validate accepts.
func validSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	s := translateGolden(t, "header_route", filepath.Join("testdata", "header_route.in.yaml"))
	if err := s.Validate(); err != nil {
		t.Fatalf("the starting snapshot is invalid: %v", err)
	}
	return s
}

// validateRejectCases break a valid snapshot (validSnapshot) in place.
var validateRejectCases = []struct {
	name   string
	mutate func(s *Snapshot)
	want   []string // every string must be in the error
}{{
	name: "route to a missing cluster",
	mutate: func(s *Snapshot) {
		r := s.Routes[checkoutRoutes].GetVirtualHosts()[0].GetRoutes()[2]
		r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "outbound|8080|v9|checkout.shop.svc.cluster.local"}
	},
	want: []string{`route configuration "` + checkoutRoutes + `"`, `route "default"`, `cluster "outbound|8080|v9|checkout.shop.svc.cluster.local" does not exist`},
}, {
	name: "weighted cluster missing",
	mutate: func(s *Snapshot) {
		r := s.Routes[checkoutRoutes].GetVirtualHosts()[0].GetRoutes()[2]
		r.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: checkoutV1}, {Name: "gone"}},
		}}
	},
	want: []string{`route "default" weighted cluster: cluster "gone" does not exist`},
}, {
	name: "mirror cluster missing",
	mutate: func(s *Snapshot) {
		delete(s.Clusters, "outbound|8080||checkout-shadow.shop.svc.cluster.local")
		delete(s.Endpoints, "outbound|8080||checkout-shadow.shop.svc.cluster.local")
	},
	want: []string{`route "beta" mirror: cluster "outbound|8080||checkout-shadow.shop.svc.cluster.local" does not exist`},
}, {
	name:   "API listener's route configuration missing",
	mutate: func(s *Snapshot) { delete(s.Routes, checkoutRoutes) },
	want: []string{
		`grpc listener "` + checkoutRoutes + `" api_listener: route configuration "` + checkoutRoutes + `" does not exist`,
		`envoy listener "10.96.0.10_8080" filter chain "10.96.0.10_8080" filter "envoy.filters.network.http_connection_manager": route configuration "` + checkoutRoutes + `" does not exist`,
	},
}, {
	name:   "EDS cluster without endpoints",
	mutate: func(s *Snapshot) { delete(s.Endpoints, checkoutV2) },
	want:   []string{`cluster "` + checkoutV2 + `": EDS resource (ClusterLoadAssignment) "` + checkoutV2 + `" does not exist`},
}, {
	name: "endpoints without a cluster",
	mutate: func(s *Snapshot) {
		s.Endpoints["outbound|1||orphan.shop.svc.cluster.local"] = &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|1||orphan.shop.svc.cluster.local"}
	},
	want: []string{`cluster load assignment "outbound|1||orphan.shop.svc.cluster.local": no EDS cluster uses it`},
}, {
	name:   "TCP proxy to a missing cluster",
	mutate: func(s *Snapshot) { delete(s.Clusters, PassthroughCluster) },
	want:   []string{`envoy listener "virtualOutbound" filter chain "PassthroughCluster" tcp_proxy: cluster "PassthroughCluster" does not exist`},
}, {
	name:   "inline route to a missing cluster",
	mutate: func(s *Snapshot) { delete(s.Clusters, InboundPassthroughCluster) },
	want:   []string{`envoy listener "virtualInbound" filter chain "inbound|http|8080" filter "envoy.filters.network.http_connection_manager" inline route configuration virtual host "inbound|8080" route "default": cluster "InboundPassthroughCluster" does not exist`},
}, {
	name: "SDS secret missing",
	mutate: func(s *Snapshot) {
		s.Clusters[checkoutV1].TransportSocket = &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: adsConfigSource()}},
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "trust-bundle:cluster.local", SdsConfig: adsConfigSource()},
				},
			}})},
		}
	},
	// "default" is each node's own certificate, resolved by the xDS server: not a snapshot secret.
	want: []string{`cluster "` + checkoutV1 + `": SDS secret "trust-bundle:cluster.local" does not exist`},
}, {
	name:   "resource stored under another name",
	mutate: func(s *Snapshot) { s.Clusters["other"] = s.Clusters[checkoutV1] },
	want:   []string{`cluster "other": resource is named "` + checkoutV1 + `"`},
}, {
	name:   "protoc-gen-validate rule broken",
	mutate: func(s *Snapshot) { s.Clusters[checkoutV1].ConnectTimeout = duration(-1) },
	want:   []string{`cluster "` + checkoutV1 + `": invalid Cluster.ConnectTimeout`},
}, {
	name: "protoc-gen-validate rule broken inside a packed connection manager",
	mutate: func(s *Snapshot) {
		l := s.Listeners[FlavourGRPC][checkoutRoutes]
		h, err := listenerHCMs(l)
		if err != nil || len(h) != 1 {
			panic(fmt.Sprint(len(h), err))
		}
		h[0].hcm.StatPrefix = ""
		l.ApiListener.ApiListener = toAny(h[0].hcm)
	},
	want: []string{`grpc listener "` + checkoutRoutes + `" api_listener: invalid HttpConnectionManager.StatPrefix`},
}, {
	name: "tracer's collector cluster missing",
	mutate: func(s *Snapshot) {
		l, err := envoyServiceListener(&testService, &testService.Ports[0], meshClusters(&ir.IR{Services: []ir.Service{testService}}), Options{TracingCollector: "x:1"})
		if err != nil {
			panic(err)
		}
		s.Listeners[FlavourEnvoy][l.GetName()] = l
	},
	want: []string{`tracing: cluster "opentelemetry_collector" does not exist`},
}, {
	name: "RBAC policy without principals",
	mutate: func(s *Snapshot) {
		l := grpcServerListener("10.244.9.9", 8080, ir.MTLSStrict, &ir.Authorization{Policies: []ir.AuthorizationPolicy{{Name: "nobody"}}})
		s.Listeners[FlavourGRPC][l.GetName()] = l
	},
	want: []string{`HTTP filter "envoy.filters.http.rbac"`, `invalid Policy.Principals`},
}}

func TestValidateRejects(t *testing.T) {
	for _, tc := range validateRejectCases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSnapshot(t)
			tc.mutate(s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted the broken snapshot")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateEmptySnapshot(t *testing.T) {
	s, err := Translate(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(s.Listeners[FlavourGRPC]) != 0 || len(s.Listeners[FlavourEnvoy]) != 2 || len(s.Clusters) != 2 {
		t.Errorf("an empty mesh should have only the virtual listeners and passthrough clusters, got %d envoy listeners, %d grpc, %d clusters",
			len(s.Listeners[FlavourEnvoy]), len(s.Listeners[FlavourGRPC]), len(s.Clusters))
	}
}
