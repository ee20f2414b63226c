package envoy

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Resource names. Every name a proxy requests, or that one resource uses to point at another, is
// built here, so the control plane and the proxies (Envoy and proxyless gRPC) agree on them.

// Names of the fixed resources that do not come from a Service.
const (
	// VirtualOutboundListener captures every outbound connection of an Envoy sidecar and hands it to
	// the per-service listener for its original destination, or passes it through.
	VirtualOutboundListener = "virtualOutbound"
	// VirtualInboundListener captures every inbound connection of an Envoy sidecar.
	VirtualInboundListener = "virtualInbound"
	// PassthroughCluster forwards outbound traffic that matches no Service to its original
	// destination.
	PassthroughCluster = "PassthroughCluster"
	// InboundPassthroughCluster forwards inbound traffic to the local application at its original
	// destination.
	InboundPassthroughCluster = "InboundPassthroughCluster"
	// TracingCluster is the OpenTelemetry collector that Envoy sends spans to.
	TracingCluster = "opentelemetry_collector"
	// DefaultXDSClusterName names the bootstrap's static cluster for the xDS server.
	DefaultXDSClusterName = "sluice-xds"
)

// outboundPrefix starts every Service cluster name; the stats tag regexes rely on it.
const outboundPrefix = "outbound"

// ServiceHostname is the cluster-local DNS name of a Service, e.g. checkout.shop.svc.cluster.local.
func ServiceHostname(namespace, name string) string {
	return (&ir.Service{Namespace: namespace, Name: name}).Hostname()
}

// ClusterName names the cluster (and its EDS resource) for one subset of a Service port:
// outbound|<port>|<subset>|<hostname>. The subset "" is the all-endpoints subset, so
// ClusterName(8080, "", "checkout.shop.svc.cluster.local") is
// "outbound|8080||checkout.shop.svc.cluster.local".
func ClusterName(port uint32, subset, hostname string) string {
	return fmt.Sprintf("%s|%d|%s|%s", outboundPrefix, port, subset, hostname)
}

// ParseClusterName splits a name made by ClusterName; ok is false for any other name.
func ParseClusterName(name string) (port uint32, subset, hostname string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != outboundPrefix || parts[3] == "" {
		return 0, "", "", false
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, "", "", false
	}
	return uint32(p), parts[2], parts[3], true
}

// RouteConfigName names the RouteConfiguration of a Service port, shared by both flavours:
// <hostname>:<port>, e.g. checkout.shop.svc.cluster.local:8080. There is one per port, so a weight
// change touches exactly one resource.
func RouteConfigName(hostname string, port uint32) string {
	return net.JoinHostPort(hostname, strconv.FormatUint(uint64(port), 10))
}

// APIListenerName names the Listener a proxyless gRPC client requests when it dials
// xds:///<hostname>:<port>; it is the same string as the RouteConfiguration name.
func APIListenerName(hostname string, port uint32) string {
	return RouteConfigName(hostname, port)
}

// ServerListenerName names the Listener a proxyless gRPC server requests for the address it serves
// on: grpc/server?xds.resource.listening_address=<ip>:<port> (grpc-go's default template; IPv6
// addresses are bracketed).
func ServerListenerName(ip string, port uint32) string {
	return "grpc/server?xds.resource.listening_address=" + net.JoinHostPort(ip, strconv.FormatUint(uint64(port), 10))
}

// ServerListenerNameTemplate is the bootstrap's server_listener_resource_name_template that makes a
// proxyless gRPC server request ServerListenerName of its listening address.
const ServerListenerNameTemplate = "grpc/server?xds.resource.listening_address=%s"

// EnvoyListenerName names the Envoy sidecar's outbound listener for a Service port:
// <clusterIP>_<port>, e.g. 10.96.0.12_8080. "Envoy" sets it apart from the gRPC listener names.
//
//nolint:revive // stutters, but callers use it and it reads well beside APIListenerName.
func EnvoyListenerName(clusterIP string, port uint32) string {
	return fmt.Sprintf("%s_%d", clusterIP, port)
}

// statPrefix is the stat_prefix of a Service port's HTTP connection manager or TCP proxy. Envoy's
// default tag extractors cut the prefix at the first dot, so it has none: Kubernetes names contain
// neither "." (Services, namespaces) nor "_", which keeps it unambiguous.
func statPrefix(svc *ir.Service, port uint32) string {
	return fmt.Sprintf("%s_%s_%s_%d", outboundPrefix, svc.Namespace, svc.Name, port)
}

// SDS secret names an Envoy sidecar's TLS contexts fetch over ADS. The SDS server resolves them
// per stream from the node's identity (docs/xds.md, "Mutual TLS (Envoy sidecars)"), so they
// are never in a Snapshot.
const (
	// WorkloadSecret is the node's own certificate and key: the SDS server answers it with the
	// secret of the SPIFFE ID the node's certificate carries.
	WorkloadSecret = "default"
	// trustBundlePrefix starts TrustBundleSecret.
	trustBundlePrefix = "trust-bundle:"
)

// TrustBundleSecret names the validation context of a trust domain: the CA certificates that sign
// its identities (all of them while a CA rotation is under way), e.g. trust-bundle:cluster.local.
func TrustBundleSecret(trustDomain string) string { return trustBundlePrefix + trustDomain }

// servedPerNode reports whether the SDS server resolves the secret name per node rather than
// from the snapshot.
func servedPerNode(name string) bool {
	return name == WorkloadSecret || strings.HasPrefix(name, trustBundlePrefix)
}

// trustDomainOf is the trust domain of a SPIFFE ID (spiffe://<trustDomain>/...), or "" when id is
// not one.
func trustDomainOf(id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return ""
	}
	td, _, _ := strings.Cut(rest, "/")
	return td
}
