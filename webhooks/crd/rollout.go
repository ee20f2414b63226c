package crd

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/webhooks/validation"
)

type rolloutValidator struct{ look lookup }

func (v *rolloutValidator) ValidateCreate(ctx context.Context, ro *meshv1alpha1.Rollout) (admission.Warnings, error) {
	return v.validate(ctx, ro, nil)
}

func (v *rolloutValidator) ValidateUpdate(ctx context.Context, old, ro *meshv1alpha1.Rollout) (admission.Warnings, error) {
	if ro.DeletionTimestamp != nil {
		return nil, nil // being deleted: let finalizers go
	}
	return v.validate(ctx, ro, old)
}

func (*rolloutValidator) ValidateDelete(context.Context, *meshv1alpha1.Rollout) (admission.Warnings, error) {
	return nil, nil
}

func (v *rolloutValidator) validate(ctx context.Context, ro, old *meshv1alpha1.Rollout) (admission.Warnings, error) {
	var rel validation.RolloutRelated
	var warnings []string
	note := func(what string, err error) {
		if err != nil {
			warnings = append(warnings, couldNotCheck(what, err))
		}
	}
	ns := ro.Namespace
	d := &appsv1.Deployment{}
	found, err := getOptional(ctx, v.look.cached, client.ObjectKey{Namespace: ns, Name: ro.Spec.TargetRef.Name}, d)
	note("spec.targetRef", err)
	if found {
		rel.Deployment, rel.DeploymentManagedBy = d, d.Labels[controllers.LabelRollout]
	}
	svc := &corev1.Service{}
	found, err = getOptional(ctx, v.look.cached, client.ObjectKey{Namespace: ns, Name: ro.Spec.Service.Name}, svc)
	note("spec.service", err)
	if found {
		rel.Service = svc
	}
	rollouts := &meshv1alpha1.RolloutList{}
	note("other Rollouts", v.look.live.List(ctx, rollouts, client.InNamespace(ns)))
	rel.Rollouts = rollouts.Items
	policies := &meshv1alpha1.TrafficPolicyList{}
	note("TrafficPolicies", v.look.live.List(ctx, policies, client.InNamespace(ns)))
	rel.TrafficPolicies = policies.Items

	res := validation.ValidateRollout(ro, old, rel)
	res.Warnings = append(warnings, res.Warnings...)
	return denial(gk("Rollout"), ro.Name, res)
}
