package translate

import (
	"fmt"
	"regexp"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// selectPolicies picks one TrafficPolicy per Service (see selectOnePerService).
func selectPolicies(tps []*meshv1alpha1.TrafficPolicy, services map[serviceKey]*corev1.Service, problems *Problems) map[serviceKey]*meshv1alpha1.TrafficPolicy {
	return selectOnePerService(tps, services, problems, targetRule[*meshv1alpha1.TrafficPolicy]{
		kind: "TrafficPolicy", field: "spec.targetRef",
		service:  func(tp *meshv1alpha1.TrafficPolicy) string { return tp.Spec.TargetRef.Name },
		missing:  "Service %s/%s does not exist; the policy applies once it does",
		conflict: "TrafficPolicy %s already targets Service %s and is older; merge the two or delete one",
	})
}

// targetRule says how selectOnePerService reads and reports one kind.
type targetRule[T any] struct {
	kind, field string
	service     func(T) string
	// missing is formatted with namespace and Service name, conflict with the winner and Service.
	missing, conflict string
}

// selectOnePerService keeps, per Service, the oldest object (then the first by name) that names it;
// every other one is reported Conflicted, and one that names a missing Service ServiceNotFound.
func selectOnePerService[T metav1.Object](objs []T, services map[serviceKey]*corev1.Service, problems *Problems, sel targetRule[T]) map[serviceKey]T {
	sorted := append([]T(nil), objs...)
	sort.Slice(sorted, func(i, j int) bool { return olderThan(sorted[i], sorted[j]) })
	out := map[serviceKey]T{}
	for _, obj := range sorted {
		key := serviceKey{obj.GetNamespace(), sel.service(obj)}
		ref := refOf(sel.kind, obj.GetNamespace(), obj.GetName())
		if services[key] == nil {
			problems.add(ref, "ServiceNotFound", sel.field+".name", sel.missing, key.namespace, key.name)
			continue
		}
		if winner, taken := out[key]; taken {
			problems.add(ref, "Conflicted", sel.field, sel.conflict, winner.GetName(), key.name)
			continue
		}
		out[key] = obj
	}
	return out
}

// applyPolicy adds the policy's subsets to the port and returns its routes followed by the given
// default route, all with the policy's timeout, retries and mirror.
func applyPolicy(p *ir.ServicePort, defaults []ir.Route, tp *meshv1alpha1.TrafficPolicy, eps []endpoint,
	services map[serviceKey]*corev1.Service, problems *Problems) []ir.Route {
	ref := refOf("TrafficPolicy", tp.Namespace, tp.Name)
	p.Sources = append(p.Sources, ref)
	for _, s := range tp.Spec.Subsets {
		p.Subsets = append(p.Subsets, subsetOf(s.Name, eps, labels.SelectorFromSet(s.Labels)))
	}
	if lb := tp.Spec.LoadBalancer; lb != nil {
		p.Policy = &ir.ClusterPolicy{LoadBalancer: string(lb.Policy)}
	}

	routes := make([]ir.Route, 0, len(tp.Spec.Routes)+len(defaults))
	for i, r := range tp.Spec.Routes {
		route := ir.Route{Name: r.Name}
		if r.Match != nil {
			if field, err := checkRegexes(r.Match.Headers, fmt.Sprintf("spec.routes[%d].match.headers", i)); err != nil {
				problems.add(ref, "InvalidRegex", field, "%v; the route %q is left out until it is fixed", err, r.Name)
				continue
			}
			route.Match = matchOf(r.Match)
		}
		for _, d := range r.Destinations {
			weight := uint32(100)
			if d.Weight != nil {
				weight = uint32(*d.Weight)
			}
			route.Destinations = append(route.Destinations, ir.Destination{Subset: d.Subset, Weight: weight})
		}
		routes = append(routes, route)
	}
	routes = append(routes, defaults...)

	mirror := mirrorOf(tp, p, services, problems)
	for i := range routes {
		routes[i].Mirror = mirror
		if tp.Spec.Timeout != nil {
			routes[i].Timeout = tp.Spec.Timeout.Duration
		}
		routes[i].Retry = retryOf(tp.Spec.Retries)
	}
	return routes
}

// checkRegexes compiles every header regex (RE2 syntax, as the proxies use) and names the first
// field that does not compile.
func checkRegexes(headers []meshv1alpha1.HeaderMatch, path string) (string, error) {
	for j, h := range headers {
		if h.Regex == nil {
			continue
		}
		if _, err := regexp.Compile(*h.Regex); err != nil {
			return fmt.Sprintf("%s[%d].regex", path, j), fmt.Errorf("%q is not a valid RE2 regular expression: %w", *h.Regex, err)
		}
	}
	return "", nil
}

func matchOf(m *meshv1alpha1.RouteMatch) ir.Match {
	out := ir.Match{}
	if m.Path != nil {
		out.PathExact = *m.Path
	}
	if m.PathPrefix != nil {
		out.PathPrefix = *m.PathPrefix
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, headerMatchOf(h))
	}
	for _, method := range m.Methods {
		out.Methods = append(out.Methods, string(method))
	}
	sort.Strings(out.Methods)
	return out
}

func headerMatchOf(h meshv1alpha1.HeaderMatch) ir.HeaderMatch {
	out := ir.HeaderMatch{Name: h.Name}
	switch {
	case h.Exact != nil:
		out.Exact = *h.Exact
	case h.Prefix != nil:
		out.Prefix = *h.Prefix
	case h.Regex != nil:
		out.Regex = *h.Regex
	}
	return out
}

// defaultRetryOn is what a retry policy without retryOn retries: failures that are safe to retry.
var defaultRetryOn = []string{"5xx", "connect-failure", "reset"}

func retryOf(r *meshv1alpha1.RetryPolicy) *ir.Retry {
	if r == nil || r.Attempts == 0 {
		return nil
	}
	out := &ir.Retry{Attempts: uint32(r.Attempts), RetryOn: defaultRetryOn}
	if r.PerTryTimeout != nil {
		out.PerTryTimeout = r.PerTryTimeout.Duration
	}
	if len(r.RetryOn) > 0 {
		out.RetryOn = nil
		for _, on := range r.RetryOn {
			out.RetryOn = append(out.RetryOn, string(on))
		}
		sort.Strings(out.RetryOn)
	}
	return out
}

func mirrorOf(tp *meshv1alpha1.TrafficPolicy, p *ir.ServicePort, services map[serviceKey]*corev1.Service, problems *Problems) *ir.Mirror {
	m := tp.Spec.Mirror
	if m == nil {
		return nil
	}
	port := p.Port
	if m.Port != nil {
		port = uint32(*m.Port)
	}
	target := services[serviceKey{tp.Namespace, m.Service}]
	if target == nil || !hasPort(target, int32(port)) {
		problems.add(refOf("TrafficPolicy", tp.Namespace, tp.Name), "MirrorNotFound", "spec.mirror.service",
			"Service %s/%s with port %d does not exist; requests are not mirrored until it does", tp.Namespace, m.Service, port)
		return nil
	}
	percent := 100.0
	if m.Percent != nil {
		percent = float64(*m.Percent)
	}
	return &ir.Mirror{Namespace: tp.Namespace, Service: m.Service, Port: port, Subset: ir.AllEndpoints, Percent: percent}
}

// olderThan orders objects by age, then name, so the choice between two is stable.
func olderThan(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetName() < b.GetName()
}
