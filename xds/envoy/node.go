package envoy

import (
	"fmt"
	"slices"

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

// FlavourOf reads a node's flavour from its metadata; a node that does not say is an Envoy sidecar,
// and one that names an unknown flavour is an error (a typo must not silently make a gRPC client
// get Envoy listeners).
func FlavourOf(node *corev3.Node) (Flavour, error) {
	v, ok := node.GetMetadata().GetFields()[NodeMetadataFlavour]
	if !ok {
		return FlavourEnvoy, nil
	}
	f := Flavour(v.GetStringValue())
	if !slices.Contains(Flavours, f) {
		return "", fmt.Errorf("node metadata %q is %q; want one of %v", NodeMetadataFlavour, v.GetStringValue(), Flavours)
	}
	return f, nil
}
