package validation

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// TrafficPolicyRelated is what a TrafficPolicy's rules read from the cluster.
type TrafficPolicyRelated struct {
	// Service is spec.targetRef's Service; nil when it does not exist.
	Service *corev1.Service
	// PodLabels are the labels of the pods the Service's selector matches.
	PodLabels []map[string]string
	// MirrorService is spec.mirror.service's Service; nil when it does not exist or is not set.
	MirrorService *corev1.Service
	// TrafficPolicies are the other TrafficPolicies of the namespace.
	TrafficPolicies []meshv1alpha1.TrafficPolicy
	// Rollouts are the Rollouts of the namespace.
	Rollouts []meshv1alpha1.Rollout
}

// ValidateTrafficPolicy checks a TrafficPolicy; old is the object it replaces (nil on create).
func ValidateTrafficPolicy(tp, old *meshv1alpha1.TrafficPolicy, rel TrafficPolicyRelated) Result {
	var r Result
	spec := field.NewPath("spec")
	if rel.Service == nil {
		r.warn(spec.Child("targetRef", "name"), fmt.Sprintf(
			"Service %s/%s does not exist yet; the policy applies once it does", tp.Namespace, tp.Spec.TargetRef.Name))
	}
	checkPolicyUnique(&r, tp, old, rel.TrafficPolicies)
	checkSubsets(&r, tp, rel)
	checkPolicyRollout(&r, tp, rel.Rollouts)
	checkRoutes(&r, tp)
	checkMirror(&r, tp, rel.MirrorService)
	checkResilience(&r, &tp.Spec)
	return r.done()
}

func checkPolicyUnique(r *Result, tp, old *meshv1alpha1.TrafficPolicy, others []meshv1alpha1.TrafficPolicy) {
	for i := range others {
		o := &others[i]
		if o.Name == tp.Name || o.DeletionTimestamp != nil || o.Spec.TargetRef.Name != tp.Spec.TargetRef.Name {
			continue
		}
		unchanged := old != nil && old.Spec.TargetRef.Name == tp.Spec.TargetRef.Name
		duplicate(r, unchanged, field.NewPath("spec", "targetRef", "name"), tp.Spec.TargetRef.Name, fmt.Sprintf(
			"TrafficPolicy %s already targets Service %s; one policy per Service: merge the two into %s or delete it first", o.Name, tp.Spec.TargetRef.Name, o.Name))
	}
}

// checkSubsets rejects a subset whose labels contradict the Service's selector (it can never
// select a pod) and warns about one that selects none of the Service's pods today.
func checkSubsets(r *Result, tp *meshv1alpha1.TrafficPolicy, rel TrafficPolicyRelated) {
	if rel.Service == nil || len(rel.Service.Spec.Selector) == 0 {
		return
	}
	selector := rel.Service.Spec.Selector
	for i, s := range tp.Spec.Subsets {
		path := field.NewPath("spec", "subsets").Index(i).Child("labels")
		if key, contradicts := contradiction(s.Labels, selector); contradicts {
			r.fail(field.Invalid(path.Key(key), s.Labels[key], fmt.Sprintf(
				"Service %s selects %s=%s, so no pod of it has %s=%s; pick labels that tell the Service's pods apart, such as version",
				rel.Service.Name, key, selector[key], key, s.Labels[key])))
			continue
		}
		if len(rel.PodLabels) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Labels)
		if !slices.ContainsFunc(rel.PodLabels, func(l map[string]string) bool { return sel.Matches(labels.Set(l)) }) {
			r.warn(path, fmt.Sprintf("none of the %d pods of Service %s carries %s yet; requests routed to subset %s fail until one does",
				len(rel.PodLabels), rel.Service.Name, labels.Set(s.Labels), s.Name))
		}
	}
}

// contradiction returns a key that both maps set to different values.
func contradiction(a, b map[string]string) (string, bool) {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v, ok := b[k]; ok && v != a[k] {
			return k, true
		}
	}
	return "", false
}

// checkPolicyRollout rejects what a Rollout of the same Service takes over: the subset names of
// its revisions and the name of its header route.
func checkPolicyRollout(r *Result, tp *meshv1alpha1.TrafficPolicy, rollouts []meshv1alpha1.Rollout) {
	for i := range rollouts {
		ro := &rollouts[i]
		if ro.Spec.Service.Name != tp.Spec.TargetRef.Name || ro.DeletionTimestamp != nil {
			continue
		}
		for j, s := range tp.Spec.Subsets {
			if s.Name == translate.SubsetStable || s.Name == translate.SubsetCanary {
				r.fail(field.Invalid(field.NewPath("spec", "subsets").Index(j).Child("name"), s.Name, fmt.Sprintf(
					"Rollout %s uses the subsets %s and %s of Service %s for its revisions; rename this subset",
					ro.Name, translate.SubsetStable, translate.SubsetCanary, tp.Spec.TargetRef.Name)))
			}
		}
		if c := ro.Spec.Strategy.Canary; c != nil && c.HeaderRoute != nil {
			for j, route := range tp.Spec.Routes {
				if route.Name == translate.RouteCanaryHeader {
					r.fail(field.Invalid(field.NewPath("spec", "routes").Index(j).Child("name"), route.Name, fmt.Sprintf(
						"Rollout %s's header route is named %s; rename this route", ro.Name, translate.RouteCanaryHeader)))
				}
			}
		}
		if c := ro.Spec.Strategy.Canary; tp.Spec.Mirror != nil && c != nil && c.MirrorPercent != nil && *c.MirrorPercent > 0 {
			r.warn(field.NewPath("spec", "mirror"), fmt.Sprintf(
				"Rollout %s mirrors to its canary while one runs, which replaces this mirror on routes without explicit destinations", ro.Name))
		}
	}
}

// checkRoutes compiles the routes' regexes within the bounds and warns about routes that can
// never be reached.
func checkRoutes(r *Result, tp *meshv1alpha1.TrafficPolicy) {
	var rx regexes
	routes := field.NewPath("spec", "routes")
	catchAll := -1
	for i, route := range tp.Spec.Routes {
		path := routes.Index(i)
		if catchAll >= 0 {
			r.warn(path, fmt.Sprintf("never used: route %s before it has no match and takes every request; move it last", tp.Spec.Routes[catchAll].Name))
		}
		m := route.Match
		if m == nil {
			if catchAll < 0 {
				catchAll = i
			}
			continue
		}
		match := path.Child("match")
		if m.PathRegex != nil {
			rx.check(r, match.Child("pathRegex"), *m.PathRegex)
		}
		for j, h := range m.Headers {
			if h.Regex != nil {
				rx.check(r, match.Child("headers").Index(j).Child("regex"), *h.Regex)
			}
		}
		for j, q := range m.QueryParams {
			if q.Regex != nil {
				rx.check(r, match.Child("queryParams").Index(j).Child("regex"), *q.Regex)
			}
		}
	}
}

func checkMirror(r *Result, tp *meshv1alpha1.TrafficPolicy, svc *corev1.Service) {
	m := tp.Spec.Mirror
	if m == nil {
		return
	}
	path := field.NewPath("spec", "mirror")
	if m.Service == tp.Spec.TargetRef.Name {
		r.warn(path.Child("service"), "mirrors the policy's own Service: every copied request reaches the same pods twice; mirror to a separate Service such as a shadow deployment's")
	}
	if svc == nil {
		r.warn(path.Child("service"), fmt.Sprintf("Service %s/%s does not exist yet; nothing is mirrored until it does", tp.Namespace, m.Service))
		return
	}
	if m.Port != nil && !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == *m.Port }) {
		r.fail(field.Invalid(path.Child("port"), *m.Port, fmt.Sprintf(
			"Service %s has no port %d; use one of its ports (%s), or leave port out to mirror to the request's port", svc.Name, *m.Port, servicePorts(svc))))
	}
}

// checkResilience warns about retry, fault and ejection settings that are legal but risky.
func checkResilience(r *Result, spec *meshv1alpha1.TrafficPolicySpec) {
	path := field.NewPath("spec")
	if rt := spec.Retries; rt != nil && rt.Attempts > 0 {
		retries := path.Child("retries")
		if rt.RetryNonIdempotent {
			r.warn(retries.Child("retryNonIdempotent"),
				"POST and PATCH requests are retried too: a retry after a lost response applies them twice; make them idempotent (an idempotency key) or turn this off")
		}
		if rt.PerTryTimeout != nil && spec.Timeout != nil {
			tries := time.Duration(rt.Attempts+1) * rt.PerTryTimeout.Duration
			if tries > spec.Timeout.Duration {
				r.warn(retries.Child("attempts"), fmt.Sprintf(
					"%d tries of up to %s take longer than the %s timeout, which cuts the last ones short; lower attempts or perTryTimeout, or raise timeout",
					rt.Attempts+1, rt.PerTryTimeout.Duration, spec.Timeout.Duration))
			}
		}
	}
	if f := spec.FaultInjection; f != nil {
		if f.Abort != nil && f.Abort.Percent > 0 {
			r.warn(path.Child("faultInjection", "abort", "percent"), fmt.Sprintf(
				"%d%% of requests fail on purpose; remove faultInjection when the test is over", f.Abort.Percent))
		}
		if f.Delay != nil && f.Delay.Percent > 0 && spec.Timeout != nil && f.Delay.FixedDelay.Duration >= spec.Timeout.Duration {
			r.warn(path.Child("faultInjection", "delay", "fixedDelay"), fmt.Sprintf(
				"%s is not shorter than the %s timeout, so every delayed request times out", f.Delay.FixedDelay.Duration, spec.Timeout.Duration))
		}
	}
	if od := spec.OutlierDetection; od != nil && od.MaxEjectionPercent == 100 {
		r.warn(path.Child("outlierDetection", "maxEjectionPercent"),
			"100 lets every pod be ejected at once, leaving callers no pod at all; keep it below 100 (such as 50)")
	}
}
