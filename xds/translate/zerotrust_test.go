package translate_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// A ZeroTrust with an empty selector in the operator's namespace covers the pods of namespaces
// that have none of their own; a namespace's own ZeroTrust still wins in it.
func TestMeshWideZeroTrust(t *testing.T) {
	res := load(t, "testdata/zerotrust.in.yaml")
	res.OperatorNamespace = "sluice-system"
	res.ZeroTrusts = append(res.ZeroTrusts, &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: "sluice-system"},
		Spec:       meshv1alpha1.ZeroTrustSpec{MTLS: meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict}},
	})
	tree, _ := translate.Translate(res)
	modes := map[string]ir.MTLSMode{}
	for _, svc := range tree.Services {
		for _, p := range svc.Ports {
			for _, ss := range p.Subsets {
				if ss.Name != ir.AllEndpoints {
					continue
				}
				for _, e := range ss.Endpoints {
					modes[svc.Namespace+"/"+svc.Name+" "+e.Address] = e.MTLS
				}
			}
		}
	}
	want := map[string]ir.MTLSMode{
		"public/open 10.2.0.1": ir.MTLSStrict,     // mesh-wide
		"bank/api 10.1.0.1":    ir.MTLSStrict,     // the namespace's own
		"bank/api 10.1.0.2":    ir.MTLSStrict,     // the namespace's own
		"bank/api 10.1.0.3":    ir.MTLSPermissive, // the legacy selector's
	}
	for key, mode := range want {
		if modes[key] != mode {
			t.Errorf("%s: mode %q, want %q (all: %v)", key, modes[key], mode, modes)
		}
	}
}
