package envoy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// YAML renders the snapshot for people and golden files: per resource type, resources sorted by
// name, each as its proto JSON (proto field names) turned into YAML with sorted keys. The same
// snapshot always renders to the same bytes (protojson's own output is deliberately unstable, so
// it is re-encoded).
func (s *Snapshot) YAML() ([]byte, error) {
	listeners := map[string]any{}
	for f, ls := range s.Listeners {
		v, err := renderSorted(ls)
		if err != nil {
			return nil, fmt.Errorf("%s listeners: %w", f, err)
		}
		listeners[string(f)] = v
	}
	doc := map[string]any{"listeners": listeners}
	// Rendered only when there are any, so snapshots without mTLS render as before.
	overrides := map[string]any{}
	for f, cs := range s.ClusterOverrides {
		if len(cs) == 0 {
			continue
		}
		v, err := renderSorted(cs)
		if err != nil {
			return nil, fmt.Errorf("%s cluster overrides: %w", f, err)
		}
		overrides[string(f)] = v
	}
	if len(overrides) > 0 {
		doc["cluster_overrides"] = overrides
	}
	for key, render := range map[string]func() ([]any, error){
		"routes":    func() ([]any, error) { return renderSorted(s.Routes) },
		"clusters":  func() ([]any, error) { return renderSorted(s.Clusters) },
		"endpoints": func() ([]any, error) { return renderSorted(s.Endpoints) },
		"secrets":   func() ([]any, error) { return renderSorted(redactedSecrets(s.Secrets)) },
	} {
		v, err := render()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		doc[key] = v
	}
	return yaml.Marshal(doc)
}

func renderSorted[M proto.Message](m map[string]M) ([]any, error) {
	out := make([]any, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v, err := protoValue(m[name])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// protoValue is a message as plain JSON values, numbers kept exact.
func protoValue(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// redactedSecrets are secrets with their private keys replaced by ir.Redacted, so that a rendered
// snapshot (a golden file, a debug page) never shows key material.
func redactedSecrets(in map[string]*tlsv3.Secret) map[string]*tlsv3.Secret {
	out := make(map[string]*tlsv3.Secret, len(in))
	for name, sec := range in {
		if sec.GetTlsCertificate().GetPrivateKey() != nil {
			sec = proto.Clone(sec).(*tlsv3.Secret)
			sec.GetTlsCertificate().PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: ir.Redacted}}
		}
		out[name] = sec
	}
	return out
}

// ProtoYAML renders one message (such as a Bootstrap) the same way YAML renders resources.
func ProtoYAML(m proto.Message) ([]byte, error) {
	v, err := protoValue(m)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(v)
}
