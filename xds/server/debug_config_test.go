package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

func TestDebugConfigServesWhatTheNodeSubscribesTo(t *testing.T) {
	ts := startServer(t, Options{})
	m := baseMesh()
	m.clusters = append(m.clusters, "c2")
	ts.publish(t, m)
	conn := ts.dial(t)
	d := newDeltaClient(t, conn, testNode("grpc-1", envoy.FlavourGRPC))
	d.subscribe(resource.ClusterType, "c1")
	d.ack(d.next(resource.ClusterType))
	eventually(t, "the cluster ACK", func() bool {
		p := ts.Proxies()
		return len(p) == 1 && p[0].Types[resource.ClusterType].AckedVersion != ""
	})

	rec := httptest.NewRecorder()
	ts.DebugHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, DebugConfigPath+"?node=grpc-1", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", DebugConfigPath, rec.Code, rec.Body)
	}
	var page struct {
		NodeID  string         `json:"nodeID"`
		Streams []StreamConfig `json:"streams"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if page.NodeID != "grpc-1" || len(page.Streams) != 1 {
		t.Fatalf("page = %s, want the one stream of grpc-1", rec.Body)
	}
	clusters := page.Streams[0].Types[resource.ClusterType]
	if len(clusters.Resources) != 1 || clusters.Resources[0].Name != "c1" || clusters.AckedVersion == "" {
		t.Fatalf("clusters = %+v, want c1 only (the subscription), ACKed", clusters)
	}
	var c1 struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(clusters.Resources[0].Resource, &c1); err != nil || c1.Name != "c1" || c1.Type != "EDS" {
		t.Errorf("resource = %s (%v), want the cluster as protojson", clusters.Resources[0].Resource, err)
	}

	for query, want := range map[string]int{"": http.StatusBadRequest, "?node=nobody": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		ts.DebugHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, DebugConfigPath+query, nil))
		if rec.Code != want {
			t.Errorf("GET %s%s: %d, want %d", DebugConfigPath, query, rec.Code, want)
		}
	}
}

func TestRedactHidesSecretMaterialOnly(t *testing.T) {
	inline := func(s string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
	}
	secret := &tlsv3.Secret{Name: "spiffe://td/ns/a/sa/b", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline("CERT"), PrivateKey: inline("KEY"),
	}}}
	data, err := protojson.Marshal(redact(secret))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "KEY") || !strings.Contains(string(data), Redacted) || !strings.Contains(string(data), "CERT") {
		t.Errorf("redacted = %s, want the key replaced by %q and the certificate kept", data, Redacted)
	}
	if secret.GetTlsCertificate().GetPrivateKey().GetInlineString() != "KEY" {
		t.Error("redact changed the published Secret")
	}
	generic := &tlsv3.Secret{Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{Secret: inline("TOKEN")}}}
	if data, _ := protojson.Marshal(redact(generic)); strings.Contains(string(data), "TOKEN") {
		t.Errorf("redacted = %s, want the generic secret hidden", data)
	}
}
