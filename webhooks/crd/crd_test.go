package crd

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func request(t *testing.T, raw string) admission.Request {
	t.Helper()
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create,
		Kind:      metav1.GroupVersionKind{Group: "mesh.sluice.dev", Version: "v1alpha1", Kind: "ZeroTrust"},
		Object:    runtime.RawExtension{Raw: []byte(raw)},
	}}
}

// The defaulter's patch adds spec.identity and nothing else: the user's own durations and fields
// are not rewritten.
func TestDefaulterAddsOnlyTheIdentity(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	meshWide := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: "sluice-system", Name: "mesh"}}
	meshWide.Spec.Identity = &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: "mesh-ca"}}
	d := &zeroTrustDefaulter{
		live:              fake.NewClientBuilder().WithScheme(scheme).WithObjects(meshWide).Build(),
		decoder:           admission.NewDecoder(scheme),
		operatorNamespace: "sluice-system",
	}
	resp := d.Handle(context.Background(), request(t, `{"apiVersion":"mesh.sluice.dev/v1alpha1","kind":"ZeroTrust",
		"metadata":{"namespace":"shop","name":"shop"},
		"spec":{"mtls":{"mode":"STRICT"},"rules":[{"name":"r","to":{"service":"s"},"from":[{"namespace":"ops"}]}]}}`))
	if !resp.Allowed || len(resp.Patches) != 1 {
		t.Fatalf("allowed %v, patches %+v; want one patch", resp.Allowed, resp.Patches)
	}
	p := resp.Patches[0]
	value, _ := json.Marshal(p.Value)
	if p.Operation != "add" || p.Path != "/spec/identity" || !strings.Contains(string(value), `"name":"mesh-ca"`) {
		t.Errorf("patch %s %s %s; want add /spec/identity with the mesh-wide issuer", p.Operation, p.Path, value)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "copied from the mesh-wide ZeroTrust sluice-system/mesh") {
		t.Errorf("warnings %q", resp.Warnings)
	}

	resp = d.Handle(context.Background(), request(t, `{"apiVersion":"mesh.sluice.dev/v1alpha1","kind":"ZeroTrust",
		"metadata":{"namespace":"shop","name":"off"},"spec":{"mtls":{"mode":"DISABLE"}}}`))
	if !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("a DISABLE ZeroTrust: allowed %v, patches %+v; want allowed unchanged", resp.Allowed, resp.Patches)
	}
}

// An object above MaxObjectBytes is refused before any handler decodes it.
func TestOversizedObjectIsRefused(t *testing.T) {
	called := false
	w := bounded(&admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		called = true
		return admission.Allowed("")
	})})
	resp := w.Handle(context.Background(), request(t, `{"spec":"`+strings.Repeat("x", MaxObjectBytes)+`"}`))
	if resp.Allowed || called || resp.Result.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("allowed %v, handler called %v, code %d; want refused with 413 unread", resp.Allowed, called, resp.Result.Code)
	}
	if resp := w.Handle(context.Background(), request(t, `{}`)); !resp.Allowed || !called {
		t.Error("a small object did not reach the handler")
	}
}
