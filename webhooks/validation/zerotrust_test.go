package validation

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestZeroTrustRules(t *testing.T) {
	cases := []struct {
		name         string
		edit         func(zt *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated)
		update       bool
		wantErrors   []string
		wantWarnings []string
	}{
		{name: "sample", edit: func(*meshv1alpha1.ZeroTrust, *ZeroTrustRelated) {}},
		{
			name: "issuer missing",
			edit: func(_ *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) { rel.Issuer = IssuerMissing },
			wantWarnings: []string{
				"spec.identity.issuerRef.name: cert-manager ClusterIssuer mesh-ca does not exist yet; no workload certificate is issued until it does",
			},
		},
		{
			name: "namespaced issuer not ready",
			edit: func(zt *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				zt.Spec.Identity.IssuerRef.Kind = "Issuer"
				rel.Issuer = IssuerNotReady
			},
			wantWarnings: []string{
				"spec.identity.issuerRef.name: cert-manager Issuer shop/mesh-ca is not Ready; workload certificates wait for it",
			},
		},
		{
			name: "cert-manager not installed",
			edit: func(_ *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) { rel.Issuer = IssuerKindNotInstalled },
			wantWarnings: []string{
				"spec.identity.issuerRef: cert-manager is not installed (no ClusterIssuer kind in cert-manager.io); install it before workloads need certificates",
			},
		},
		{
			name: "second namespace-wide zerotrust",
			edit: func(_ *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				rel.ZeroTrusts = []meshv1alpha1.ZeroTrust{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "older"}}}
			},
			wantErrors: []string{
				`spec.selector: Invalid value: "": ZeroTrust older already covers the whole namespace; merge the two or give this one a more specific selector`,
			},
		},
		{
			name: "same selector written differently",
			edit: func(zt *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				zt.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}}
				other := meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "older"}}
				other.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"checkout"}}}}
				rel.ZeroTrusts = []meshv1alpha1.ZeroTrust{other}
			},
			wantErrors: []string{
				`spec.selector: Invalid value: "app=checkout": ZeroTrust older already covers the pods of selector app=checkout; merge the two or give this one a more specific selector`,
			},
		},
		{
			name: "another selector is no conflict",
			edit: func(zt *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				zt.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}}
				rel.ZeroTrusts = []meshv1alpha1.ZeroTrust{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "namespace-wide"}}}
			},
		},
		{
			name:   "an existing duplicate can still be edited",
			update: true,
			edit: func(_ *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				rel.ZeroTrusts = []meshv1alpha1.ZeroTrust{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "older"}}}
			},
			wantWarnings: []string{
				"spec.selector: ZeroTrust older already covers the whole namespace; merge the two or give this one a more specific selector",
			},
		},
		{
			name: "invalid selector operator",
			edit: func(zt *meshv1alpha1.ZeroTrust, _ *ZeroTrustRelated) {
				zt.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Equals", Values: []string{"x"}}}}
			},
			wantErrors: []string{
				`spec.selector: Invalid value: "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:Equals,Values:[x],},},}": "Equals" is not a valid label selector operator; matchExpressions operators are In, NotIn (with values), Exists and DoesNotExist (without)`,
			},
		},
		{
			name: "rules that cannot apply as written",
			edit: func(zt *meshv1alpha1.ZeroTrust, rel *ZeroTrustRelated) {
				zt.Spec.MTLS.Mode = meshv1alpha1.MTLSPermissive
				zt.Spec.Rules[0].To.Ports = []int32{8080, 9090}
				zt.Spec.Rules[0].From[2].Principal = "spiffe://partner.example/ns/x/sa/y"
				zt.Spec.Rules = append(zt.Spec.Rules, meshv1alpha1.AuthorizationRule{Name: "ledger",
					To: meshv1alpha1.AuthorizationTarget{Service: "ledger"}, From: []meshv1alpha1.AuthorizationSource{{Namespace: "shop"}}})
				_ = rel
			},
			wantWarnings: []string{
				"spec.rules: rules are enforced only under STRICT mutual TLS (mode is PERMISSIVE): callers are not authenticated otherwise",
				"spec.rules[0].to.ports[1]: Service checkout has no port 9090 (its ports: 8080); this port allows nothing",
				"spec.rules[0].from[2].principal: is in trust domain partner.example, not this ZeroTrust's cluster.local: its certificates must chain to a CA the workloads trust",
				"spec.rules[1].to.service: Service shop/ledger does not exist yet; the rule applies once it does",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			zt, rel := sampleZeroTrust(t), zeroTrustRelated()
			var old *meshv1alpha1.ZeroTrust
			if tc.update {
				old = zt.DeepCopy()
			}
			tc.edit(zt, &rel)
			wantResult(t, ValidateZeroTrust(zt, old, rel), tc.wantErrors, tc.wantWarnings)
		})
	}
}

func TestMeshWideIdentity(t *testing.T) {
	meshWide := func(name string, age time.Duration, issuer string) meshv1alpha1.ZeroTrust {
		zt := meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: "sluice-system", Name: name,
			CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age))}}
		zt.Spec.Identity = &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: issuer}}
		return zt
	}
	selected := meshWide("selected", time.Hour, "other")
	selected.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	candidates := []meshv1alpha1.ZeroTrust{meshWide("newer", time.Minute, "newer-ca"), meshWide("mesh", time.Hour, "mesh-ca"), selected}

	noIdentity := func(ns string, mode meshv1alpha1.MTLSMode) *meshv1alpha1.ZeroTrust {
		zt := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
		zt.Spec.MTLS.Mode = mode
		return zt
	}
	id, from := MeshWideIdentity(noIdentity("shop", meshv1alpha1.MTLSStrict), candidates, "sluice-system")
	if id == nil || id.IssuerRef.Name != "mesh-ca" || from != "mesh" {
		t.Errorf("a STRICT ZeroTrust without identity got %v from %q; want the oldest mesh-wide's, mesh-ca from mesh", id, from)
	}
	for _, zt := range []*meshv1alpha1.ZeroTrust{
		noIdentity("shop", meshv1alpha1.MTLSDisable),         // needs no identity
		noIdentity("sluice-system", meshv1alpha1.MTLSStrict), // is the mesh-wide one
		sampleZeroTrust(t), // has its own
	} {
		if id, _ := MeshWideIdentity(zt, candidates, "sluice-system"); id != nil {
			t.Errorf("%s/%s (mode %s) got an identity; want none", zt.Namespace, zt.Name, zt.Spec.MTLS.Mode)
		}
	}
	if id, _ := MeshWideIdentity(noIdentity("shop", meshv1alpha1.MTLSStrict), nil, "sluice-system"); id != nil {
		t.Error("got an identity with no mesh-wide ZeroTrust")
	}
}
