package server

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// A cache key names one xcache.Cache: the type URL for the types every flavour shares, and
// "<type URL>#<flavour>" for listeners and clusters, which differ per flavour (proxyless gRPC
// clusters to mTLS servers name the bootstrap's certificate provider; envoy.Snapshot.ClustersOf).

// servedTypes are the type URLs the server answers, in publish order (see publish.go).
var servedTypes = []string{
	resource.SecretType,
	resource.EndpointType,
	resource.ClusterType,
	resource.RouteType,
	resource.ListenerType,
}

// typeNames are the short names used in metric labels.
var typeNames = map[string]string{
	resource.ListenerType: "lds",
	resource.RouteType:    "rds",
	resource.ClusterType:  "cds",
	resource.EndpointType: "eds",
	resource.SecretType:   "sds",
}

func served(typeURL string) bool {
	_, ok := typeNames[typeURL]
	return ok
}

// listenerKey is the cache key of the listeners of flavour f.
func listenerKey(f envoy.Flavour) string { return resource.ListenerType + "#" + string(f) }

// clusterKey is the cache key of the clusters of flavour f.
func clusterKey(f envoy.Flavour) string { return resource.ClusterType + "#" + string(f) }

// perFlavour reports whether typeURL has a cache per flavour.
func perFlavour(typeURL string) bool {
	return typeURL == resource.ListenerType || typeURL == resource.ClusterType
}

// cacheKey is the key of the cache that serves typeURL to a proxy of flavour f.
func cacheKey(typeURL string, f envoy.Flavour) string {
	if perFlavour(typeURL) {
		return typeURL + "#" + string(f)
	}
	return typeURL
}

// cacheKeys lists every cache key.
func cacheKeys() []string {
	keys := []string{resource.SecretType, resource.EndpointType}
	for _, f := range envoy.Flavours {
		keys = append(keys, clusterKey(f))
	}
	keys = append(keys, resource.RouteType)
	for _, f := range envoy.Flavours {
		keys = append(keys, listenerKey(f))
	}
	return keys
}

// typeOfKey is the type URL a cache key serves.
func typeOfKey(key string) string {
	for _, f := range envoy.Flavours {
		switch key {
		case listenerKey(f):
			return resource.ListenerType
		case clusterKey(f):
			return resource.ClusterType
		}
	}
	return key
}

// nodeFlavour reads the flavour from the node's metadata (envoy.FlavourOf).
func nodeFlavour(n *core.Node) (envoy.Flavour, error) { return envoy.FlavourOf(n) }

// classify picks the cache for a request from its type URL and, for listeners and clusters, its
// node's flavour.
// Both go-control-plane servers set request.Node from the stream's first request before creating a
// watch, and the tracker's request callbacks do the same from their own per-stream record, so the
// node is there on every request of a stream. An unknown flavour gives a key with no cache; the
// tracker rejects such a stream earlier with a clearer error.
func classify(typeURL string, n *core.Node) string {
	if !perFlavour(typeURL) {
		return typeURL
	}
	f, err := nodeFlavour(n)
	if err != nil {
		return "invalid-flavour"
	}
	return cacheKey(typeURL, f)
}
