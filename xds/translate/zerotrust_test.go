package translate_test

import (
	"strconv"
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

// Once a rule is for a workload, each of its STRICT or PERMISSIVE servers is default deny: a port that no rule
// names gets an Authorization without policies. A workload no rule is for gets none.
func TestAuthorizationDefaultDeny(t *testing.T) {
	res := load(t, "testdata/zerotrust-authz.in.yaml")
	for _, zt := range res.ZeroTrusts {
		if zt.Name == "bank" {
			zt.Spec.Rules = []meshv1alpha1.AuthorizationRule{{
				Name: "admins",
				To:   meshv1alpha1.AuthorizationTarget{Service: "ledger", Ports: []int32{9091}},
				From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "admin"}},
			}}
		}
	}
	tree, _ := translate.Translate(res)
	got := map[string]*ir.Authorization{}
	for _, svc := range tree.Services {
		for _, p := range svc.Ports {
			for _, e := range p.Subsets[0].Endpoints {
				got[svc.Name+" "+e.Address+":"+strconv.Itoa(int(e.Port))] = e.Authorization
			}
		}
	}
	if a := got["ledger 10.1.0.1:50051"]; a == nil || len(a.Policies) != 0 {
		t.Errorf("ledger's 50051 should deny every call: %+v", a)
	}
	if a := got["ledger 10.1.0.1:50052"]; a == nil || len(a.Policies) != 1 || a.Policies[0].Name != "admins" {
		t.Errorf("ledger's 50052 should allow admins only: %+v", a)
	}
	if a := got["notes 10.1.0.2:50051"]; a != nil {
		t.Errorf("notes has no rule, so no authorization: %+v", a)
	}
	// Envoy sidecars enforce the rules of a PERMISSIVE server too; proxyless ones ignore them.
	if a := got["notes 10.1.0.3:50051"]; a == nil || len(a.Policies) != 1 {
		t.Errorf("the PERMISSIVE legacy server should carry its ZeroTrust's rule: %+v", a)
	}
}
