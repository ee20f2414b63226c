package envoy

// Flavour is the kind of xDS client a node is. Listeners differ between flavours; routes, clusters
// and endpoints are the same resources for both.
type Flavour string

const (
	// FlavourEnvoy is an Envoy sidecar: outbound capture on 15001, inbound on 15006.
	FlavourEnvoy Flavour = "envoy"
	// FlavourGRPC is a proxyless gRPC client or server using grpc-go's xDS support.
	FlavourGRPC Flavour = "grpc"
)

// Flavours lists every flavour, in a fixed order.
var Flavours = []Flavour{FlavourEnvoy, FlavourGRPC}

// NodeMetadataFlavour is the key of the node metadata field that says the flavour ("envoy" or
// "grpc"); a node without it is an Envoy sidecar.
const NodeMetadataFlavour = "sluice.dev/flavour"
