// Package crd serves the admission webhooks of Sluice's own kinds: it gathers the objects a rule
// needs from the cluster and hands them to the pure rules of webhooks/validation. The webhook
// configurations are generated from the markers below into config/webhook/manifests.yaml.
package crd

import (
	"context"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/webhooks/validation"
)

// Failure policy Fail: an object of these kinds is admitted only once checked. Only Sluice's own
// kinds are affected while the operator is down, and they have no effect without it anyway.
//
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-rollout,mutating=false,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=rollouts,verbs=create;update,versions=v1alpha1,name=vrollout.mesh.sluice.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-trafficpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=trafficpolicies,verbs=create;update,versions=v1alpha1,name=vtrafficpolicy.mesh.sluice.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-zerotrust,mutating=false,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=zerotrusts,verbs=create;update,versions=v1alpha1,name=vzerotrust.mesh.sluice.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/mutate-mesh-sluice-dev-v1alpha1-zerotrust,mutating=true,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=zerotrusts,verbs=create;update,versions=v1alpha1,name=mzerotrust.mesh.sluice.dev,admissionReviewVersions=v1
//
// The webhooks read what the rules compare against.
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts;trafficpolicies;zerotrusts,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services;pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch

// The paths the webhooks are served on (the markers' paths).
const (
	RolloutValidatePath       = "/validate-mesh-sluice-dev-v1alpha1-rollout"
	TrafficPolicyValidatePath = "/validate-mesh-sluice-dev-v1alpha1-trafficpolicy"
	ZeroTrustValidatePath     = "/validate-mesh-sluice-dev-v1alpha1-zerotrust"
	ZeroTrustDefaultPath      = "/mutate-mesh-sluice-dev-v1alpha1-zerotrust"
)

// MaxObjectBytes bounds the object an admission request may carry: etcd's default request limit
// (1.5 MiB), above which the API server could not store it anyway. Larger ones are refused before
// they are decoded.
const MaxObjectBytes = 3 << 19

// Register adds the webhooks to mgr's webhook server. operatorNamespace holds the mesh-wide
// ZeroTrust whose identity a ZeroTrust without one takes.
func Register(mgr ctrl.Manager, operatorNamespace string) error {
	scheme := mgr.GetScheme()
	look := lookup{cached: mgr.GetClient(), live: mgr.GetAPIReader()}
	srv := mgr.GetWebhookServer()
	srv.Register(RolloutValidatePath, bounded(admission.WithValidator[*meshv1alpha1.Rollout](scheme, &rolloutValidator{look})))
	srv.Register(TrafficPolicyValidatePath, bounded(admission.WithValidator[*meshv1alpha1.TrafficPolicy](scheme, &trafficPolicyValidator{look})))
	srv.Register(ZeroTrustValidatePath, bounded(admission.WithValidator[*meshv1alpha1.ZeroTrust](scheme, &zeroTrustValidator{look})))
	srv.Register(ZeroTrustDefaultPath, bounded(&admission.Webhook{Handler: &zeroTrustDefaulter{
		live: look.live, decoder: admission.NewDecoder(scheme), operatorNamespace: operatorNamespace,
	}}))
	return nil
}

// bounded refuses an admission request whose object is larger than MaxObjectBytes.
func bounded(w *admission.Webhook) *admission.Webhook {
	inner := w.Handler
	w.Handler = admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if n := max(len(req.Object.Raw), len(req.OldObject.Raw)); n > MaxObjectBytes {
			return admission.Errored(http.StatusRequestEntityTooLarge, fmt.Errorf(
				"the object is %d bytes, more than the %d the webhook accepts; split it", n, MaxObjectBytes))
		}
		return inner.Handle(ctx, req)
	})
	return w
}

// lookup reads related objects: Deployments, Services and pods from the manager's cache (the
// controllers watch them already), Sluice's kinds and issuers from the API server, so that an
// object created a moment ago is seen.
type lookup struct {
	cached client.Reader
	live   client.Reader
}

// denial turns the rules' result into the validator's answer.
func denial(gk schema.GroupKind, name string, r validation.Result) (admission.Warnings, error) {
	if len(r.Errors) == 0 {
		return r.Warnings, nil
	}
	return r.Warnings, apierrors.NewInvalid(gk, name, r.Errors)
}

// couldNotCheck is the warning when a lookup fails: the object is admitted unchecked on that
// point rather than blocked by an API hiccup; the controllers report what is wrong in status.
func couldNotCheck(what string, err error) string {
	return fmt.Sprintf("could not check %s: %v", what, err)
}

func gk(kind string) schema.GroupKind {
	return schema.GroupKind{Group: meshv1alpha1.GroupVersion.Group, Kind: kind}
}
