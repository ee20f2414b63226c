package server

import (
	"encoding/json"
	"net/http"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	xcache "github.com/sluice-mesh/sluice/xds/cache"
)

// DebugConfigPath serves, for ?node=<node id>, the resources each of the node's streams
// subscribes to as this replica publishes them now, with the versions the stream was sent and
// ACKed. Secret material (private keys, generic secrets, session ticket keys) is redacted.
const DebugConfigPath = "/debug/xds/config"

// Redacted replaces secret material in DebugConfigPath's answers.
const Redacted = "[redacted]"

// StreamConfig is one stream's resources, by type URL.
type StreamConfig struct {
	StreamID int64                 `json:"streamID"`
	Types    map[string]TypeConfig `json:"types"`
}

// TypeConfig is what a stream holds of one type.
type TypeConfig struct {
	SentVersion  string           `json:"sentVersion,omitempty"`
	AckedVersion string           `json:"ackedVersion,omitempty"`
	Resources    []ConfigResource `json:"resources"`
}

// ConfigResource is one resource as protojson; its type is the key of the TypeConfig holding it.
type ConfigResource struct {
	Name     string          `json:"name"`
	Resource json.RawMessage `json:"resource"`
}

func (s *Server) serveConfig(w http.ResponseWriter, r *http.Request) {
	node := r.URL.Query().Get("node")
	if node == "" {
		http.Error(w, "name the proxy: "+DebugConfigPath+"?node=<node id> (see "+DebugProxiesPath+")", http.StatusBadRequest)
		return
	}
	streams, err := s.NodeConfig(node)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(streams) == 0 {
		http.Error(w, "no stream of node "+node+" is connected to this replica", http.StatusNotFound)
		return
	}
	writeJSON(w, struct {
		NodeID  string         `json:"nodeID"`
		Streams []StreamConfig `json:"streams"`
	}{node, streams})
}

// subscription is a stream's state for one type, copied out under the stream's lock.
type subscription struct {
	typeURL, sent, acked string
	key                  string // the cache key
	sub                  *xcache.Set
}

// NodeConfig lists, for each open stream of the node, the resources it subscribes to as published
// now, sorted by name.
func (s *Server) NodeConfig(nodeID string) ([]StreamConfig, error) {
	var out []StreamConfig
	for _, st := range s.proxies.streamList() {
		st.mu.Lock()
		if st.closed || st.nodeID() != nodeID {
			st.mu.Unlock()
			continue
		}
		id := st.id
		subs := make([]subscription, 0, len(st.types))
		for url, ts := range st.types {
			subs = append(subs, subscription{typeURL: url, sent: ts.sentVersion, acked: ts.ackedVersion, key: cacheKey(url, st.flavour), sub: ts.sub})
		}
		st.mu.Unlock()
		sc := StreamConfig{StreamID: id, Types: map[string]TypeConfig{}}
		for _, sub := range subs {
			res, err := s.publishedIn(sub)
			if err != nil {
				return nil, err
			}
			sc.Types[sub.typeURL] = TypeConfig{SentVersion: sub.sent, AckedVersion: sub.acked, Resources: res}
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b StreamConfig) int { return int(a.StreamID - b.StreamID) })
	return out, nil
}

// publishedIn renders the published resources the subscription covers.
func (s *Server) publishedIn(sub subscription) ([]ConfigResource, error) {
	s.pubMu.Lock()
	msgs := map[string]types.Resource{}
	for name, p := range s.published[sub.key] {
		if sub.sub.Has(name) {
			msgs[name] = p.msg
		}
	}
	s.pubMu.Unlock()
	out := make([]ConfigResource, 0, len(msgs))
	for name, msg := range msgs {
		data, err := protojson.Marshal(redact(msg))
		if err != nil {
			return nil, err
		}
		out = append(out, ConfigResource{Name: name, Resource: data})
	}
	slices.SortFunc(out, func(a, b ConfigResource) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// redact returns a copy of a Secret with its secret material replaced by Redacted; any other
// resource as it is.
func redact(msg types.Resource) types.Resource {
	secret, ok := msg.(*tlsv3.Secret)
	if !ok {
		return msg
	}
	secret = proto.Clone(secret).(*tlsv3.Secret)
	hidden := &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: Redacted}}
	switch t := secret.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		if t.TlsCertificate.GetPrivateKey() != nil {
			t.TlsCertificate.PrivateKey = hidden
		}
		if t.TlsCertificate.GetPassword() != nil {
			t.TlsCertificate.Password = hidden
		}
	case *tlsv3.Secret_GenericSecret:
		t.GenericSecret.Secret = hidden
		t.GenericSecret.Secrets = nil
	case *tlsv3.Secret_SessionTicketKeys:
		t.SessionTicketKeys.Keys = []*corev3.DataSource{hidden}
	}
	return secret
}
