package envoy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/xds/ir"
)

func secretsIR() *ir.IR {
	return &ir.IR{
		Identities:   []ir.Identity{{SPIFFEID: "spiffe://cluster.local/ns/shop/sa/web", CertificateChain: "chain", PrivateKey: "the-key"}},
		TrustBundles: []ir.TrustBundle{{TrustDomain: "cluster.local", CACertificates: "cas"}},
	}
}

// An unchanged secret is the very message of the previous translation; a changed one is new.
func TestTranslatorReusesUnchangedSecrets(t *testing.T) {
	tr := NewTranslator(Options{})
	first, err := tr.Translate(secretsIR())
	if err != nil {
		t.Fatal(err)
	}
	in := secretsIR()
	in.TrustBundles[0].CACertificates = "cas, and a new root"
	second, err := tr.Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	web := "spiffe://cluster.local/ns/shop/sa/web"
	if first.Secrets[web] != second.Secrets[web] {
		t.Error("the unchanged identity secret was built again")
	}
	bundle := TrustBundleSecret("cluster.local")
	if first.Secrets[bundle] == second.Secrets[bundle] {
		t.Error("the changed trust bundle is the previous message")
	}
}

// Key material shows neither in a rendered snapshot nor when the IR is printed or encoded.
func TestPrivateKeysNeverPrint(t *testing.T) {
	in := secretsIR()
	s, err := Translate(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{
		"snapshot YAML": string(y), "IR JSON": string(j),
		"IR %v": fmt.Sprintf("%v", in.Identities[0]), "IR %+v": fmt.Sprintf("%+v", in.Identities[0]), "IR %#v": fmt.Sprintf("%#v", in.Identities[0]),
	} {
		// "the-key" base64-encoded is dGhlLWtleQ.
		if strings.Contains(text, "the-key") || strings.Contains(text, "dGhlLWtleQ") {
			t.Errorf("%s shows the private key:\n%s", what, text)
		}
	}
	if got := string(s.Secrets["spiffe://cluster.local/ns/shop/sa/web"].GetTlsCertificate().GetPrivateKey().GetInlineBytes()); got != "the-key" {
		t.Errorf("the served secret's key is %q, want the key itself", got)
	}
}
