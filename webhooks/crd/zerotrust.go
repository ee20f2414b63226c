package crd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/webhooks/validation"
)

type zeroTrustValidator struct{ look lookup }

func (v *zeroTrustValidator) ValidateCreate(ctx context.Context, zt *meshv1alpha1.ZeroTrust) (admission.Warnings, error) {
	return v.validate(ctx, zt, nil)
}

func (v *zeroTrustValidator) ValidateUpdate(ctx context.Context, old, zt *meshv1alpha1.ZeroTrust) (admission.Warnings, error) {
	if zt.DeletionTimestamp != nil {
		return nil, nil
	}
	return v.validate(ctx, zt, old)
}

func (*zeroTrustValidator) ValidateDelete(context.Context, *meshv1alpha1.ZeroTrust) (admission.Warnings, error) {
	return nil, nil
}

func (v *zeroTrustValidator) validate(ctx context.Context, zt, old *meshv1alpha1.ZeroTrust) (admission.Warnings, error) {
	var warnings []string
	note := func(what string, err error) {
		if err != nil {
			warnings = append(warnings, couldNotCheck(what, err))
		}
	}
	ns := zt.Namespace
	rel := validation.ZeroTrustRelated{Services: map[string]*corev1.Service{}}
	var err error
	rel.Issuer, err = v.issuer(ctx, zt)
	note("spec.identity.issuerRef", err)
	for _, rule := range zt.Spec.Rules {
		name := rule.To.Service
		if _, seen := rel.Services[name]; seen {
			continue
		}
		svc := &corev1.Service{}
		found, err := getOptional(ctx, v.look.cached, client.ObjectKey{Namespace: ns, Name: name}, svc)
		note("Service "+name, err)
		if found {
			rel.Services[name] = svc
		}
	}
	zts := &meshv1alpha1.ZeroTrustList{}
	note("other ZeroTrusts", v.look.live.List(ctx, zts, client.InNamespace(ns)))
	rel.ZeroTrusts = zts.Items

	res := validation.ValidateZeroTrust(zt, old, rel)
	res.Warnings = append(warnings, res.Warnings...)
	return denial(gk("ZeroTrust"), zt.Name, res)
}

// issuer looks up the cert-manager issuer the ZeroTrust names.
func (v *zeroTrustValidator) issuer(ctx context.Context, zt *meshv1alpha1.ZeroTrust) (validation.IssuerState, error) {
	id := zt.Spec.Identity
	if id == nil || (id.IssuerRef.Group != "" && id.IssuerRef.Group != validation.CertManagerGroup) {
		return validation.IssuerNotChecked, nil
	}
	kind, key := id.IssuerRef.Kind, client.ObjectKey{Name: id.IssuerRef.Name}
	if kind == "" {
		kind = "Issuer"
	}
	if kind == "Issuer" {
		key.Namespace = zt.Namespace
	}
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(validation.CertManagerGroup + "/v1")
	obj.SetKind(kind)
	found, err := getOptional(ctx, v.look.live, key, obj)
	switch {
	case meta.IsNoMatchError(err):
		return validation.IssuerKindNotInstalled, nil
	case err != nil:
		return validation.IssuerNotChecked, err
	case !found:
		return validation.IssuerMissing, nil
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == string(metav1.ConditionTrue) {
			return validation.IssuerReady, nil
		}
	}
	return validation.IssuerNotReady, nil
}

// zeroTrustDefaulter gives a ZeroTrust without an identity the mesh-wide ZeroTrust's, as a JSON
// patch that adds spec.identity and touches nothing else.
type zeroTrustDefaulter struct {
	live              client.Reader
	decoder           admission.Decoder
	operatorNamespace string
}

func (d *zeroTrustDefaulter) Handle(ctx context.Context, req admission.Request) admission.Response {
	zt := &meshv1alpha1.ZeroTrust{}
	if err := d.decoder.Decode(req, zt); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if zt.Spec.Identity != nil || zt.Spec.MTLS.Mode == meshv1alpha1.MTLSDisable {
		return admission.Allowed("")
	}
	candidates := &meshv1alpha1.ZeroTrustList{}
	if err := d.live.List(ctx, candidates, client.InNamespace(d.operatorNamespace)); err != nil {
		return admission.Allowed("").WithWarnings(couldNotCheck("the mesh-wide ZeroTrust for an identity", err))
	}
	id, from := validation.MeshWideIdentity(zt, candidates.Items, d.operatorNamespace)
	if id == nil {
		return admission.Allowed("")
	}
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return admission.Allowed("")
	}
	spec["identity"] = id
	patched, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, patched).WithWarnings(fmt.Sprintf(
		"spec.identity: copied from the mesh-wide ZeroTrust %s/%s (issuer %s %s); later changes to that one do not reach this copy",
		d.operatorNamespace, from, id.IssuerRef.Kind, id.IssuerRef.Name))
}
