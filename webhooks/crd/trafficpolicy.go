package crd

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/webhooks/validation"
)

// maxPodsChecked bounds the pods a TrafficPolicy's subsets are compared with.
const maxPodsChecked = 1000

type trafficPolicyValidator struct{ look lookup }

func (v *trafficPolicyValidator) ValidateCreate(ctx context.Context, tp *meshv1alpha1.TrafficPolicy) (admission.Warnings, error) {
	return v.validate(ctx, tp, nil)
}

func (v *trafficPolicyValidator) ValidateUpdate(ctx context.Context, old, tp *meshv1alpha1.TrafficPolicy) (admission.Warnings, error) {
	if tp.DeletionTimestamp != nil {
		return nil, nil
	}
	return v.validate(ctx, tp, old)
}

func (*trafficPolicyValidator) ValidateDelete(context.Context, *meshv1alpha1.TrafficPolicy) (admission.Warnings, error) {
	return nil, nil
}

func (v *trafficPolicyValidator) validate(ctx context.Context, tp, old *meshv1alpha1.TrafficPolicy) (admission.Warnings, error) {
	var rel validation.TrafficPolicyRelated
	var warnings []string
	note := func(what string, err error) {
		if err != nil {
			warnings = append(warnings, couldNotCheck(what, err))
		}
	}
	ns := tp.Namespace
	svc := &corev1.Service{}
	found, err := getOptional(ctx, v.look.cached, client.ObjectKey{Namespace: ns, Name: tp.Spec.TargetRef.Name}, svc)
	note("spec.targetRef", err)
	if found {
		rel.Service = svc
		if len(svc.Spec.Selector) > 0 && len(tp.Spec.Subsets) > 0 {
			pods := &corev1.PodList{}
			err := v.look.cached.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(svc.Spec.Selector))
			note("the Service's pods", err)
			for i := range pods.Items[:min(len(pods.Items), maxPodsChecked)] {
				rel.PodLabels = append(rel.PodLabels, pods.Items[i].Labels)
			}
		}
	}
	if m := tp.Spec.Mirror; m != nil {
		mirror := &corev1.Service{}
		found, err := getOptional(ctx, v.look.cached, client.ObjectKey{Namespace: ns, Name: m.Service}, mirror)
		note("spec.mirror.service", err)
		if found {
			rel.MirrorService = mirror
		}
	}
	policies := &meshv1alpha1.TrafficPolicyList{}
	note("other TrafficPolicies", v.look.live.List(ctx, policies, client.InNamespace(ns)))
	rel.TrafficPolicies = policies.Items
	rollouts := &meshv1alpha1.RolloutList{}
	note("Rollouts", v.look.live.List(ctx, rollouts, client.InNamespace(ns)))
	rel.Rollouts = rollouts.Items

	res := validation.ValidateTrafficPolicy(tp, old, rel)
	res.Warnings = append(warnings, res.Warnings...)
	return denial(gk("TrafficPolicy"), tp.Name, res)
}
