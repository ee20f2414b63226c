package envoy

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Node metadata keys. Envoy sidecars get them from Bootstrap; proxyless gRPC applications set them
// in the node of their GRPC_XDS_BOOTSTRAP file. See docs/xds.md.
const (
	NodeMetadataNamespace      = "sluice.dev/namespace"
	NodeMetadataPod            = "sluice.dev/pod"
	NodeMetadataWorkload       = "sluice.dev/workload"
	NodeMetadataVersion        = "sluice.dev/version"
	NodeMetadataServiceAccount = "sluice.dev/service-account"
)

// NodeID is the node.id of a proxy: <flavour>~<podIP>~<pod>.<namespace>~<namespace>.svc.cluster.local.
func NodeID(f Flavour, podIP, pod, namespace string) string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", f, podIP, pod, namespace, namespace)
}

// FlavourOf reads a node's flavour from its metadata; a node that does not say is an Envoy sidecar.
func FlavourOf(node *corev3.Node) Flavour {
	if v, ok := node.GetMetadata().GetFields()[NodeMetadataFlavour]; ok && Flavour(v.GetStringValue()) == FlavourGRPC {
		return FlavourGRPC
	}
	return FlavourEnvoy
}
