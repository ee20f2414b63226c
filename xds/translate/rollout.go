package translate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// The subsets a Rollout adds to its Service's port while a canary runs.
const (
	SubsetStable = "stable"
	SubsetCanary = "canary"
	// RouteCanaryHeader is the route that pins requests carrying the Rollout's headerRoute to the canary.
	RouteCanaryHeader = "canary-header"
)

// RevisionLabel tells pods of different revisions apart; Deployments set it on every pod.
const RevisionLabel = "pod-template-hash"

// selectRollouts picks one Rollout per Service (see selectOnePerService).
func selectRollouts(ros []*meshv1alpha1.Rollout, services map[serviceKey]*corev1.Service, problems *Problems) map[serviceKey]*meshv1alpha1.Rollout {
	return selectOnePerService(ros, services, problems, targetRule[*meshv1alpha1.Rollout]{
		kind: "Rollout", field: "spec.service",
		service:  func(ro *meshv1alpha1.Rollout) string { return ro.Spec.Service.Name },
		missing:  "Service %s/%s does not exist; create it or fix spec.service.name",
		conflict: "Rollout %s already releases through Service %s and is older; one Rollout per Service",
	})
}

// canaryRunning says whether the Rollout has a canary revision distinct from stable.
func canaryRunning(ro *meshv1alpha1.Rollout) bool {
	return ro.Status.CanaryRevision != "" && ro.Status.CanaryRevision != ro.Status.StableRevision
}

// canaryServing says whether the canary's pods are up for the header route and mirroring: during
// a run and its promotion, not after a rollback (the canary is scaled down, and a header route to
// it would fail every call that carries the header).
func canaryServing(ro *meshv1alpha1.Rollout) bool {
	switch ro.Status.Phase {
	case meshv1alpha1.RolloutProgressing, meshv1alpha1.RolloutPaused, meshv1alpha1.RolloutPromoting:
		return true
	}
	return false
}

// applyRollout splits the routes that send to the whole Service between the stable and the canary
// revision by the Rollout's current weight, adds the header route to the canary, and mirrors to the
// canary. Routes that pin a subset keep it during a canary. What the TrafficPolicy tp (nil if none)
// asks for that the Rollout overrides is reported on the policy.
func applyRollout(p *ir.ServicePort, routes []ir.Route, ro *meshv1alpha1.Rollout, tp *meshv1alpha1.TrafficPolicy, eps []endpoint, problems *Problems) []ir.Route {
	ref := refOf("Rollout", ro.Namespace, ro.Name)
	if p.Protocol == ir.ProtocolTCP {
		problems.add(ref, "UnsupportedProtocol", "spec.service.port",
			"port %d carries TCP; canary traffic splitting needs an HTTP or gRPC port", p.Port)
		return routes
	}
	p.Sources = append(p.Sources, ref)
	if tp != nil {
		routes = rolloutConflicts(p, routes, ro, tp, problems)
	}
	if !canaryRunning(ro) {
		return routes
	}

	canarySel := labels.SelectorFromSet(labels.Set{RevisionLabel: ro.Status.CanaryRevision})
	stableSel := labels.SelectorFromSet(labels.Set{RevisionLabel: ro.Status.StableRevision})
	if ro.Status.StableRevision == "" {
		// No stable revision recorded: everything that is not the canary is stable.
		req, _ := labels.NewRequirement(RevisionLabel, selection.NotEquals, []string{ro.Status.CanaryRevision})
		stableSel = labels.NewSelector().Add(*req)
	}
	p.Subsets = replaceSubset(p.Subsets, subsetOf(SubsetStable, eps, stableSel))
	p.Subsets = replaceSubset(p.Subsets, subsetOf(SubsetCanary, eps, canarySel))

	weight := uint32(min(max(ro.Status.CanaryWeight, 0), 100))
	split := []ir.Destination{{Subset: SubsetStable, Weight: 100 - weight}, {Subset: SubsetCanary, Weight: weight}}
	out := make([]ir.Route, 0, len(routes)+1)
	h := ro.Spec.Strategy.Canary.HeaderRoute
	if !canaryServing(ro) {
		h = nil
	}
	if h != nil {
		if field, err := checkRegexes([]meshv1alpha1.HeaderMatch{*h}, "spec.strategy.canary.headerRoute"); err != nil {
			problems.add(ref, "InvalidRegex", strings.TrimSuffix(field, "[0].regex")+".regex", "%v; the header route is left out until it is fixed", err)
			h = nil
		}
	}
	if h != nil {
		pinned := routes[len(routes)-1] // the default route's settings (timeout, retries)
		pinned.Name = RouteCanaryHeader
		pinned.Match = ir.Match{Headers: []ir.HeaderMatch{headerMatchOf(*h)}}
		pinned.Destinations = []ir.Destination{{Subset: SubsetCanary, Weight: 100}}
		pinned.Mirror = nil
		out = append(out, pinned)
	}
	for _, r := range routes {
		if len(r.Destinations) == 1 && r.Destinations[0].Subset == ir.AllEndpoints {
			r.Destinations = split
			if pct := ro.Spec.Strategy.Canary.MirrorPercent; pct != nil && *pct > 0 && canaryServing(ro) {
				r.Mirror = &ir.Mirror{Namespace: ro.Namespace, Service: ro.Spec.Service.Name, Port: p.Port,
					Subset: SubsetCanary, Percent: float64(*pct)}
			}
		}
		out = append(out, r)
	}
	return out
}

// rolloutConflicts reports on the TrafficPolicy what cannot hold next to the Rollout of the same
// Service port, and drops a route whose name the Rollout's header route takes.
func rolloutConflicts(p *ir.ServicePort, routes []ir.Route, ro *meshv1alpha1.Rollout, tp *meshv1alpha1.TrafficPolicy, problems *Problems) []ir.Route {
	ref := refOf("TrafficPolicy", tp.Namespace, tp.Name)
	for _, s := range tp.Spec.Subsets {
		if s.Name == SubsetStable || s.Name == SubsetCanary {
			problems.add(ref, "RolloutConflict", "spec.subsets",
				"subset %q is the name of a revision of Rollout %s on port %d, which replaces it while a canary runs; rename the subset",
				s.Name, ro.Name, p.Port)
		}
	}
	if tp.Spec.Mirror != nil && ro.Spec.Strategy.Canary != nil && ro.Spec.Strategy.Canary.MirrorPercent != nil && *ro.Spec.Strategy.Canary.MirrorPercent > 0 {
		problems.add(ref, "RolloutConflict", "spec.mirror",
			"Rollout %s mirrors to its canary, which replaces this mirror on the routes without explicit destinations while a canary runs; a request is mirrored to one place only",
			ro.Name)
	}
	if ro.Spec.Strategy.Canary != nil && ro.Spec.Strategy.Canary.HeaderRoute != nil {
		out := routes[:0:0]
		for i, r := range routes {
			if r.Name == RouteCanaryHeader && i < len(tp.Spec.Routes) {
				problems.add(ref, "RolloutConflict", fmt.Sprintf("spec.routes[%d].name", i),
					"the route name %q is taken by Rollout %s's header route; the route is left out until it is renamed", r.Name, ro.Name)
				continue
			}
			out = append(out, r)
		}
		routes = out
	}
	return routes
}

// replaceSubset puts s in place of a subset of the same name, or adds it.
func replaceSubset(subsets []ir.Subset, s ir.Subset) []ir.Subset {
	for i := range subsets {
		if subsets[i].Name == s.Name {
			subsets[i] = s
			return subsets
		}
	}
	return append(subsets, s)
}
