package translate

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// protocolOf reads a port's protocol from its appProtocol, else from its name's prefix (the
// Istio convention: grpc-*, http-*, tcp-*). Unnamed TCP ports default to HTTP, the common case for
// the services a mesh routes; UDP and SCTP ports are not meshed.
func protocolOf(p corev1.ServicePort) (ir.Protocol, bool) {
	if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
		return "", false
	}
	if p.AppProtocol != nil {
		switch strings.ToLower(*p.AppProtocol) {
		case "grpc", "kubernetes.io/h2c", "http2":
			return ir.ProtocolGRPC, true
		case "http", "kubernetes.io/http":
			return ir.ProtocolHTTP, true
		case "tcp", "tls", "https", "kubernetes.io/ws", "kubernetes.io/wss":
			return ir.ProtocolTCP, true
		}
	}
	name := strings.ToLower(p.Name)
	switch {
	case name == "grpc" || strings.HasPrefix(name, "grpc-"):
		return ir.ProtocolGRPC, true
	case name == "tcp" || strings.HasPrefix(name, "tcp-") || name == "https" || strings.HasPrefix(name, "https-") ||
		name == "tls" || strings.HasPrefix(name, "tls-"):
		return ir.ProtocolTCP, true
	default:
		return ir.ProtocolHTTP, true
	}
}
