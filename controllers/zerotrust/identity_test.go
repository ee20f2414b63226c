package zerotrust

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestIdentities(t *testing.T) {
	const opNS = "sluice-system"
	ns := zt("shop", "ns", 0, nil)
	off := zt("shop", "off", 1, labelsSel("mesh", "off"))
	off.Spec.MTLS.Mode, off.Spec.Identity = meshv1alpha1.MTLSDisable, nil
	// DISABLE with spec.identity still issues: proxies authenticate to the xDS server with it.
	plain := zt("shop", "plain", 1, labelsSel("mesh", "plain"))
	plain.Spec.MTLS.Mode = meshv1alpha1.MTLSDisable
	pinned := zt("shop", "pinned", 2, labelsSel("app", "pinned"))
	pinned.Spec.Identity = &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Name: "local"}, TrustDomain: "pinned.example"}
	mesh := zt(opNS, "mesh", 0, nil)
	pods := []Pod{
		pod("shop", "a1", "a"), pod("shop", "a2", "a"),
		pod("shop", "b1", "b", "mesh", "off"),                         // no spec.identity: no identity for b
		pod("shop", "e1", "e", "mesh", "plain"),                       // DISABLE with spec.identity: e has one
		pod("shop", "c1", "c", "mesh", "off"), pod("shop", "c2", "c"), // one covered pod is enough
		pod("shop", "d1", "", "app", "pinned"), pod("shop", "d2", ""), // the more specific ZeroTrust decides
		pod("other", "o1", "o"),
	}
	c := Resolve([]*meshv1alpha1.ZeroTrust{ns, off, plain, pinned, mesh}, pods, opNS)
	var got []string
	for _, id := range Identities(c, pods) {
		got = append(got, id.Namespace+"/"+id.ServiceAccount+" "+id.ZeroTrust.Name+" "+id.SPIFFEID()+" "+string(rune('0'+id.Pods)))
	}
	want := []string{
		"other/o mesh spiffe://cluster.local/ns/other/sa/o 1",
		"shop/a ns spiffe://cluster.local/ns/shop/sa/a 2",
		"shop/c ns spiffe://cluster.local/ns/shop/sa/c 1",
		"shop/default pinned spiffe://pinned.example/ns/shop/sa/default 2",
		"shop/e plain spiffe://cluster.local/ns/shop/sa/e 1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("identities:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCertificate(t *testing.T) {
	owner := zt("shop", "ns", 0, nil)
	owner.UID = "uid-1"
	owner.Spec.Identity.TrustDomain = "example.org"
	owner.Spec.Identity.Duration = &metav1.Duration{Duration: time.Hour}
	owner.Spec.Identity.RenewBefore = &metav1.Duration{Duration: 20 * time.Minute}
	crt := Certificate(Identity{Namespace: "shop", ServiceAccount: "web", ZeroTrust: owner})
	if crt.GetName() != "sluice-identity-web" || crt.GetNamespace() != "shop" || crt.GetKind() != "Certificate" {
		t.Fatalf("Certificate %s/%s of kind %s", crt.GetNamespace(), crt.GetName(), crt.GetKind())
	}
	spec := crt.Object["spec"].(map[string]any)
	wantSpec := map[string]any{
		"secretName":  "sluice-identity-web",
		"uris":        []any{"spiffe://example.org/ns/shop/sa/web"},
		"duration":    "1h0m0s",
		"renewBefore": "20m0s",
		"issuerRef":   map[string]any{"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "ca"},
		"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256)},
		"usages":      []any{"server auth", "client auth", "digital signature", "key encipherment"},
		"secretTemplate": map[string]any{"labels": map[string]any{
			"mesh.sluice.dev/identity": "true", "mesh.sluice.dev/service-account": "web", "app.kubernetes.io/managed-by": "sluice"}},
	}
	if !reflect.DeepEqual(spec, wantSpec) {
		t.Errorf("spec:\n%v\nwant\n%v", spec, wantSpec)
	}
	if refs := crt.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "uid-1" || refs[0].Kind != "ZeroTrust" || !*refs[0].Controller {
		t.Errorf("owner references %v, want the ZeroTrust as controller", refs)
	}
	if got := crt.GetAnnotations()[AnnotationZeroTrust]; got != "shop/ns" {
		t.Errorf("annotation %q", got)
	}

	// A mesh-wide ZeroTrust cannot own a Certificate of another namespace; Issuer is the default kind.
	mesh := zt("sluice-system", "mesh", 0, nil)
	mesh.Spec.Identity = &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Name: "local"}}
	crt = Certificate(Identity{Namespace: "shop", ServiceAccount: "web", ZeroTrust: mesh})
	if len(crt.GetOwnerReferences()) != 0 || crt.GetAnnotations()[AnnotationZeroTrust] != "sluice-system/mesh" {
		t.Errorf("mesh-wide: owners %v, annotations %v", crt.GetOwnerReferences(), crt.GetAnnotations())
	}
	spec = crt.Object["spec"].(map[string]any)
	if spec["duration"] != "24h0m0s" || spec["renewBefore"] != "8h0m0s" || spec["issuerRef"].(map[string]any)["kind"] != "Issuer" {
		t.Errorf("defaults: %v", spec)
	}
	if n := CertificateName(strings.Repeat("a", 253)); len(n) != 253 || !strings.HasPrefix(n, CertificatePrefix) {
		t.Errorf("a long name: %d characters", len(n))
	}
}

func TestUpToDate(t *testing.T) {
	owner := zt("shop", "ns", 0, nil)
	owner.UID = "uid-1"
	want := Certificate(Identity{Namespace: "shop", ServiceAccount: "web", ZeroTrust: owner})
	// What the API server returns: defaults added, numbers as int64, status and metadata set.
	have := want.DeepCopy()
	have.Object["spec"].(map[string]any)["privateKey"].(map[string]any)["rotationPolicy"] = "Always"
	have.Object["status"] = map[string]any{"conditions": []any{}}
	have.SetResourceVersion("7")
	have.SetLabels(map[string]string{LabelIdentity: "true", LabelServiceAccount: "web", LabelManagedBy: ManagedBy, "extra": "x"})
	if !UpToDate(have, want) {
		t.Fatal("a defaulted Certificate is not up to date")
	}
	for name, change := range map[string]func(u *unstructured.Unstructured){
		"issuer": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "other", "spec", "issuerRef", "name")
		},
		"trust domain": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(u.Object, []any{"spiffe://x/ns/shop/sa/web"}, "spec", "uris")
		},
		"duration": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "1h0m0s", "spec", "duration")
		},
		"owner":      func(u *unstructured.Unstructured) { u.SetOwnerReferences(nil) },
		"annotation": func(u *unstructured.Unstructured) { u.SetAnnotations(nil) },
		"a foreign ZeroTrust owner": func(u *unstructured.Unstructured) {
			u.SetOwnerReferences(append(u.GetOwnerReferences(), metav1.OwnerReference{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "ZeroTrust", Name: "x", UID: types.UID("u2")}))
		},
	} {
		changed := have.DeepCopy()
		change(changed)
		if UpToDate(changed, want) {
			t.Errorf("%s changed, still up to date", name)
		}
	}
}
