package kubectlsluice

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// The debug pages' JSON (xds/server's ProxyStatus, TypeStatus, NACK), read without importing the
// xDS server: the plugin stays small.
type (
	proxyStream struct {
		NodeID         string                `json:"nodeID"`
		Cluster        string                `json:"cluster,omitempty"`
		Flavour        string                `json:"flavour"`
		UserAgent      string                `json:"userAgent,omitempty"`
		Address        string                `json:"address,omitempty"`
		StreamID       int64                 `json:"streamID"`
		Delta          bool                  `json:"delta"`
		ConnectedSince time.Time             `json:"connectedSince"`
		Types          map[string]typeStatus `json:"types"`
	}
	typeStatus struct {
		SentVersion  string `json:"sentVersion,omitempty"`
		AckedVersion string `json:"ackedVersion,omitempty"`
		NACK         *nack  `json:"nack,omitempty"`
	}
	nack struct {
		NodeID    string    `json:"nodeID"`
		TypeURL   string    `json:"typeURL"`
		Version   string    `json:"version,omitempty"`
		Resources []string  `json:"resources,omitempty"`
		Message   string    `json:"message"`
		Time      time.Time `json:"time"`
	}
)

// xdsTypes are the resource types, by the names the commands use, in display order.
var xdsTypes = []struct{ name, short, url string }{
	{"listeners", "LDS", "type.googleapis.com/envoy.config.listener.v3.Listener"},
	{"routes", "RDS", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"},
	{"clusters", "CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
	{"endpoints", "EDS", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"},
	{"secrets", "SDS", "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"},
}

// podOfNode reads the pod a node id names: <flavour>~<ip>~<pod>.<namespace>~<domain>
// (xds/envoy.NodeID); ok is false for a node id of another form.
func podOfNode(nodeID string) (namespace, pod string, ok bool) {
	parts := strings.Split(nodeID, "~")
	if len(parts) != 4 {
		return "", "", false
	}
	i := strings.LastIndexByte(parts[2], '.') // a namespace has no dot; a pod name may
	if i <= 0 {
		return "", "", false
	}
	return parts[2][i+1:], parts[2][:i], true
}

// fetched is what every replica said.
type fetched struct {
	streams map[string][]proxyStream // by replica
	nacks   []nack
}

// withProxies reaches every operator replica, reads their connected proxies and NACKs, and hands
// them to use with the current namespace; the connections close when use returns.
func (e *env) withProxies(ctx context.Context, op operatorFlags, use func(ns string, reps []replica, f fetched) error) error {
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	reps, closeAll, err := e.replicas(ctx, op)
	if err != nil {
		return err
	}
	defer closeAll()
	f, err := fetchProxies(ctx, reps)
	if err != nil {
		return err
	}
	return use(ns, reps, f)
}

func fetchProxies(ctx context.Context, reps []replica) (fetched, error) {
	f := fetched{streams: map[string][]proxyStream{}}
	for _, r := range reps {
		var proxies struct {
			Proxies []proxyStream `json:"proxies"`
		}
		if err := r.get(ctx, debugProxiesPath, nil, &proxies); err != nil {
			return f, err
		}
		var nacks struct {
			NACKs []nack `json:"nacks"`
		}
		if err := r.get(ctx, debugNACKsPath, nil, &nacks); err != nil {
			return f, err
		}
		f.streams[r.name] = proxies.Proxies
		f.nacks = append(f.nacks, nacks.NACKs...)
	}
	return f, nil
}

func labelSelector(s string) (labels.Selector, error) {
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--operator-selector %q: %w", s, err)
	}
	return sel, nil
}

// sortedKeys returns a map's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
