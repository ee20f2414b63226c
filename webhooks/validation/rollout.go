package validation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// RolloutRelated is what a Rollout's rules read from the cluster.
type RolloutRelated struct {
	// Deployment is spec.targetRef's Deployment; nil when it does not exist.
	Deployment *appsv1.Deployment
	// DeploymentManagedBy names the Rollout whose stable copy the Deployment is (Sluice's
	// rollout.sluice.dev/name label); empty for a user's Deployment.
	DeploymentManagedBy string
	// Service is spec.service's Service; nil when it does not exist.
	Service *corev1.Service
	// Rollouts are the other Rollouts of the namespace.
	Rollouts []meshv1alpha1.Rollout
	// TrafficPolicies are the TrafficPolicies of the namespace.
	TrafficPolicies []meshv1alpha1.TrafficPolicy
}

// ShortAnalysisInterval is the interval under which failureLimit 0 draws a warning: the first
// failed check rolls back, and short windows hold few requests.
const ShortAnalysisInterval = time.Minute

// ValidateRollout checks a Rollout; old is the object it replaces (nil on create).
func ValidateRollout(ro, old *meshv1alpha1.Rollout, rel RolloutRelated) Result {
	var r Result
	spec := field.NewPath("spec")
	checkRolloutTarget(&r, ro, rel)
	checkRolloutService(&r, ro, rel)
	checkRolloutUnique(&r, ro, old, rel.Rollouts)
	checkRolloutPolicies(&r, ro, rel.TrafficPolicies)

	var rx regexes
	if c := ro.Spec.Strategy.Canary; c != nil && c.HeaderRoute != nil && c.HeaderRoute.Regex != nil {
		rx.check(&r, spec.Child("strategy", "canary", "headerRoute", "regex"), *c.HeaderRoute.Regex)
	}
	checkAnalysis(&r, ro.Spec.Analysis, spec.Child("analysis"))
	return r.done()
}

func checkRolloutTarget(r *Result, ro *meshv1alpha1.Rollout, rel RolloutRelated) {
	path := field.NewPath("spec", "targetRef", "name")
	name := ro.Spec.TargetRef.Name
	switch {
	case rel.Deployment == nil:
		r.warn(path, fmt.Sprintf("Deployment %s/%s does not exist yet; the Rollout waits for it", ro.Namespace, name))
	case rel.DeploymentManagedBy != "":
		r.fail(field.Invalid(path, name, fmt.Sprintf(
			"Deployment %s is the stable copy Sluice keeps for Rollout %s; target the user's Deployment (%s) instead",
			name, rel.DeploymentManagedBy, strings.TrimSuffix(name, "-primary"))))
	}
}

func checkRolloutService(r *Result, ro *meshv1alpha1.Rollout, rel RolloutRelated) {
	svcPath := field.NewPath("spec", "service")
	svc := rel.Service
	if svc == nil {
		r.warn(svcPath.Child("name"), fmt.Sprintf("Service %s/%s does not exist yet; traffic is split once it does", ro.Namespace, ro.Spec.Service.Name))
		return
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == ro.Spec.Service.Port }) {
		r.fail(field.Invalid(svcPath.Child("port"), ro.Spec.Service.Port, fmt.Sprintf(
			"Service %s has no port %d; use one of its ports (%s)", svc.Name, ro.Spec.Service.Port, servicePorts(svc))))
	}
	if len(svc.Spec.Selector) == 0 {
		r.fail(field.Invalid(svcPath.Child("name"), svc.Name, fmt.Sprintf(
			"Service %s has no selector, so Sluice cannot tell the canary's pods from the stable ones; give the Service a selector that matches the Deployment's pod labels", svc.Name)))
		return
	}
	d := rel.Deployment
	if d == nil || rel.DeploymentManagedBy != "" {
		return
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		r.fail(field.Invalid(svcPath.Child("name"), svc.Name, fmt.Sprintf(
			"Service %s selects %s, which the pods of Deployment %s (labels %s) do not carry; fix the Service's selector or the pod template's labels, or name the Service that fronts this Deployment",
			svc.Name, labels.Set(svc.Spec.Selector), d.Name, labels.Set(d.Spec.Template.Labels))))
	}
}

// checkRolloutUnique rejects a second Rollout of the same Deployment or through the same Service.
// On an update that keeps the target, an existing duplicate (made before this webhook ran) is a
// warning, so that the object can still be edited or deleted.
func checkRolloutUnique(r *Result, ro, old *meshv1alpha1.Rollout, others []meshv1alpha1.Rollout) {
	spec := field.NewPath("spec")
	for i := range others {
		o := &others[i]
		if o.Name == ro.Name || o.DeletionTimestamp != nil {
			continue
		}
		if o.Spec.TargetRef.Name == ro.Spec.TargetRef.Name {
			unchanged := old != nil && old.Spec.TargetRef.Name == ro.Spec.TargetRef.Name
			duplicate(r, unchanged, spec.Child("targetRef", "name"), ro.Spec.TargetRef.Name, fmt.Sprintf(
				"Rollout %s already releases Deployment %s; one Rollout per Deployment: edit that Rollout or delete it first", o.Name, ro.Spec.TargetRef.Name))
		}
		if o.Spec.Service.Name == ro.Spec.Service.Name {
			unchanged := old != nil && old.Spec.Service.Name == ro.Spec.Service.Name
			duplicate(r, unchanged, spec.Child("service", "name"), ro.Spec.Service.Name, fmt.Sprintf(
				"Rollout %s already splits the traffic of Service %s; one Rollout per Service: edit that Rollout or delete it first", o.Name, ro.Spec.Service.Name))
		}
	}
}

func duplicate(r *Result, unchanged bool, path *field.Path, value, msg string) {
	if unchanged {
		r.warn(path, msg)
		return
	}
	r.fail(field.Invalid(path, value, msg))
}

// checkRolloutPolicies warns about what a TrafficPolicy of the same Service asks for that the
// Rollout takes over while a canary runs (the TrafficPolicy's own webhook rejects it when the
// policy is written after the Rollout).
func checkRolloutPolicies(r *Result, ro *meshv1alpha1.Rollout, tps []meshv1alpha1.TrafficPolicy) {
	for i := range tps {
		tp := &tps[i]
		if tp.Spec.TargetRef.Name != ro.Spec.Service.Name {
			continue
		}
		for _, s := range tp.Spec.Subsets {
			if s.Name == translate.SubsetStable || s.Name == translate.SubsetCanary {
				r.warn(field.NewPath("spec", "service", "name"), fmt.Sprintf(
					"TrafficPolicy %s has a subset named %q, which this Rollout replaces while a canary runs; rename that subset", tp.Name, s.Name))
			}
		}
	}
}

func checkAnalysis(r *Result, a *meshv1alpha1.Analysis, path *field.Path) {
	if a == nil {
		r.warn(path, "absent: steps advance on their pauses alone and nothing checks the canary's health; add metrics to roll a bad canary back")
		return
	}
	interval := ShortAnalysisInterval
	if a.Interval != nil {
		interval = a.Interval.Duration
	}
	if a.FailureLimit == 0 && interval < ShortAnalysisInterval {
		r.warn(path.Child("failureLimit"), fmt.Sprintf(
			"0 with a %s interval rolls the canary back on its first failed check, and short windows hold few requests; allow 1 or 2 failures or lengthen the interval", interval))
	}
	for i, m := range a.Metrics {
		if m.Query == "" {
			continue
		}
		if err := checkQueryTemplate(m.Query); err != nil {
			r.fail(field.Invalid(path.Child("metrics").Index(i).Child("query"), short(m.Query), err.Error()))
		}
	}
}

func servicePorts(svc *corev1.Service) string {
	ports := make([]string, 0, len(svc.Spec.Ports))
	for _, p := range svc.Spec.Ports {
		ports = append(ports, strconv.Itoa(int(p.Port)))
	}
	if len(ports) == 0 {
		return "none"
	}
	return strings.Join(ports, ", ")
}
