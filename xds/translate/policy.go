package translate

import (
	"fmt"
	"regexp"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

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

// applyPolicy adds the policy's subsets and connection-level settings to the port and returns its
// routes followed by the given default route, all with the policy's timeout, retries, fault
// injection and mirror.
func applyPolicy(p *ir.ServicePort, defaults []ir.Route, tp *meshv1alpha1.TrafficPolicy, eps []endpoint,
	services map[serviceKey]*corev1.Service, problems *Problems) []ir.Route {
	ref := refOf("TrafficPolicy", tp.Namespace, tp.Name)
	p.Sources = append(p.Sources, ref)
	for _, s := range tp.Spec.Subsets {
		ss := subsetOf(s.Name, eps, labels.SelectorFromSet(s.Labels))
		if len(ss.Endpoints) == 0 && len(eps) > 0 && usesSubset(tp, s.Name) {
			problems.warn(ref, "SubsetEmpty", "spec.subsets",
				"subset %q selects none of the %d endpoints of Service %s/%s port %d (labels %v); requests routed to it fail until a pod matches",
				s.Name, len(eps), tp.Namespace, tp.Spec.TargetRef.Name, p.Port, s.Labels)
		}
		p.Subsets = append(p.Subsets, ss)
	}
	p.Policy = clusterPolicyOf(&tp.Spec)
	if rl := tp.Spec.RateLimit; rl != nil {
		p.RateLimit = &ir.RateLimit{RequestsPerSecond: uint32(rl.RequestsPerSecond), Burst: uint32(rl.Burst)}
	}

	routes := make([]ir.Route, 0, len(tp.Spec.Routes)+len(defaults))
	for i, r := range tp.Spec.Routes {
		route := ir.Route{Name: r.Name}
		if r.Match != nil {
			if field, err := checkMatchRegexes(r.Match, fmt.Sprintf("spec.routes[%d].match", i)); err != nil {
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
	fault := faultOf(tp.Spec.FaultInjection)
	for i := range routes {
		routes[i].Mirror = mirror
		if tp.Spec.Timeout != nil {
			routes[i].Timeout = tp.Spec.Timeout.Duration
		}
		routes[i].Retry = retryOf(tp.Spec.Retries, p.Protocol)
		routes[i].Fault = fault
	}
	return routes
}

// usesSubset says whether a route of the policy sends to the subset.
func usesSubset(tp *meshv1alpha1.TrafficPolicy, subset string) bool {
	for _, r := range tp.Spec.Routes {
		for _, d := range r.Destinations {
			if d.Subset == subset && (d.Weight == nil || *d.Weight > 0) {
				return true
			}
		}
	}
	return false
}

// checkRegexes compiles every header regex (RE2 syntax, as the proxies use) and names the first
// field that does not compile.
func checkRegexes(headers []meshv1alpha1.HeaderMatch, path string) (string, error) {
	for j, h := range headers {
		if h.Regex == nil {
			continue
		}
		if err := checkRegex(*h.Regex); err != nil {
			return fmt.Sprintf("%s[%d].regex", path, j), err
		}
	}
	return "", nil
}

// checkMatchRegexes compiles the path, header and query parameter regexes of a match.
func checkMatchRegexes(m *meshv1alpha1.RouteMatch, path string) (string, error) {
	if m.PathRegex != nil {
		if err := checkRegex(*m.PathRegex); err != nil {
			return path + ".pathRegex", err
		}
	}
	if field, err := checkRegexes(m.Headers, path+".headers"); err != nil {
		return field, err
	}
	for j, q := range m.QueryParams {
		if q.Regex == nil {
			continue
		}
		if err := checkRegex(*q.Regex); err != nil {
			return fmt.Sprintf("%s.queryParams[%d].regex", path, j), err
		}
	}
	return "", nil
}

func checkRegex(expr string) error {
	if _, err := regexp.Compile(expr); err != nil {
		return fmt.Errorf("%q is not a valid RE2 regular expression: %w", expr, err)
	}
	return nil
}

func matchOf(m *meshv1alpha1.RouteMatch) ir.Match {
	out := ir.Match{}
	if m.Path != nil {
		out.PathExact = *m.Path
	}
	if m.PathPrefix != nil {
		out.PathPrefix = *m.PathPrefix
	}
	if m.PathRegex != nil {
		out.PathRegex = *m.PathRegex
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, headerMatchOf(h))
	}
	for _, method := range m.Methods {
		out.Methods = append(out.Methods, string(method))
	}
	sort.Strings(out.Methods)
	for _, q := range m.QueryParams {
		out.QueryParams = append(out.QueryParams, valueMatchOf(q.Name, q.Exact, q.Prefix, q.Regex))
	}
	return out
}

func headerMatchOf(h meshv1alpha1.HeaderMatch) ir.HeaderMatch {
	return valueMatchOf(h.Name, h.Exact, h.Prefix, h.Regex)
}

// valueMatchOf keeps the one comparison that is set; none (present) leaves them all empty.
func valueMatchOf(name string, exact, prefix, regex *string) ir.HeaderMatch {
	out := ir.HeaderMatch{Name: name}
	switch {
	case exact != nil:
		out.Exact = *exact
	case prefix != nil:
		out.Prefix = *prefix
	case regex != nil:
		out.Regex = *regex
	}
	return out
}

// Default retry conditions: failures that are safe to retry. gRPC ports retry gRPC UNAVAILABLE
// (the server did not process the call), the only default condition grpc-go understands.
var (
	defaultRetryOnHTTP = []string{"5xx", "connect-failure", "reset"}
	defaultRetryOnGRPC = []string{"connect-failure", "refused-stream", "unavailable"}
)

func retryOf(r *meshv1alpha1.RetryPolicy, proto ir.Protocol) *ir.Retry {
	if r == nil || r.Attempts == 0 {
		return nil
	}
	out := &ir.Retry{Attempts: uint32(r.Attempts), RetryOn: defaultRetryOnHTTP, NonIdempotent: r.RetryNonIdempotent}
	if proto == ir.ProtocolGRPC {
		out.RetryOn = defaultRetryOnGRPC
	}
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

// grpcCodes are the gRPC status codes by name.
var grpcCodes = map[meshv1alpha1.GRPCStatus]uint32{
	"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func faultOf(f *meshv1alpha1.FaultInjection) *ir.Fault {
	if f == nil || (f.Delay == nil && f.Abort == nil) {
		return nil
	}
	out := &ir.Fault{}
	if d := f.Delay; d != nil && d.Percent > 0 {
		out.Delay = &ir.FaultDelay{Percent: float64(d.Percent), Duration: d.FixedDelay.Duration}
	}
	if a := f.Abort; a != nil && a.Percent > 0 {
		out.Abort = &ir.FaultAbort{Percent: float64(a.Percent)}
		switch {
		case a.GRPCStatus != nil:
			out.Abort.GRPCStatus = grpcCodes[*a.GRPCStatus]
		case a.HTTPStatus != nil:
			out.Abort.HTTPStatus = uint32(*a.HTTPStatus)
		}
		if out.Abort.GRPCStatus == 0 && out.Abort.HTTPStatus == 0 {
			out.Abort.HTTPStatus = 503 // an unknown gRPC status name cannot pass validation
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// Defaults of the fields the API server defaults, for objects that did not pass through it.
const (
	defaultBudgetPercent       = 20
	defaultMinRetryConcurrency = 3
	defaultOutlierInterval     = 10 * time.Second
	defaultBaseEjectionTime    = 30 * time.Second
	defaultMaxEjectionPercent  = 10
	defaultMinimumHosts        = 5
	defaultRequestVolume       = 50
)

// clusterPolicyOf gathers the policy's connection-level settings; nil when there are none.
func clusterPolicyOf(spec *meshv1alpha1.TrafficPolicySpec) *ir.ClusterPolicy {
	out := &ir.ClusterPolicy{}
	if lb := spec.LoadBalancer; lb != nil {
		out.LoadBalancer = string(lb.Policy)
		out.HashHeader = lb.HashHeader
		if c := lb.HashCookie; c != nil {
			out.HashCookie = &ir.HashCookie{Name: c.Name}
			if c.TTL != nil {
				out.HashCookie.TTL = c.TTL.Duration
			}
		}
	}
	if cb := spec.CircuitBreaker; cb != nil {
		out.CircuitBreaker = &ir.CircuitBreaker{
			MaxConnections:     positive(cb.MaxConnections),
			MaxPendingRequests: positive(cb.MaxPendingRequests),
			MaxRequests:        positive(cb.MaxRequests),
		}
		if cb.MaxRetries != nil {
			out.CircuitBreaker.MaxRetries = ptr.To(uint32(max(*cb.MaxRetries, 0)))
		}
	}
	// Retries get a budget unless the user capped them with circuitBreaker.maxRetries (Envoy
	// ignores max_retries when a budget is set).
	if r := spec.Retries; r != nil && r.Attempts > 0 && (spec.CircuitBreaker == nil || spec.CircuitBreaker.MaxRetries == nil) {
		out.RetryBudget = &ir.RetryBudget{Percent: defaultBudgetPercent, MinConcurrency: defaultMinRetryConcurrency}
		if r.BudgetPercent != nil {
			out.RetryBudget.Percent = float64(*r.BudgetPercent)
		}
		if r.MinRetryConcurrency != nil {
			out.RetryBudget.MinConcurrency = uint32(*r.MinRetryConcurrency)
		}
	}
	if od := spec.OutlierDetection; od != nil {
		o := &ir.OutlierDetection{Consecutive5xx: positive(od.Consecutive5xxErrors),
			Interval: defaultOutlierInterval, BaseEjectionTime: defaultBaseEjectionTime, MaxEjectionPercent: defaultMaxEjectionPercent}
		if od.Interval != nil {
			o.Interval = od.Interval.Duration
		}
		if od.BaseEjectionTime != nil {
			o.BaseEjectionTime = od.BaseEjectionTime.Duration
		}
		if od.MaxEjectionPercent != 0 {
			o.MaxEjectionPercent = uint32(od.MaxEjectionPercent)
		}
		if fp := od.FailurePercentage; fp != nil {
			o.FailurePercentage = &ir.FailurePercentage{Threshold: uint32(fp.Threshold), MinimumHosts: defaultMinimumHosts, RequestVolume: defaultRequestVolume}
			if fp.MinimumHosts != nil {
				o.FailurePercentage.MinimumHosts = uint32(*fp.MinimumHosts)
			}
			if fp.RequestVolume != nil {
				o.FailurePercentage.RequestVolume = uint32(*fp.RequestVolume)
			}
		}
		out.OutlierDetection = o
	}
	if *out == (ir.ClusterPolicy{}) {
		return nil
	}
	return out
}

func positive(v *int32) uint32 {
	if v == nil || *v < 0 {
		return 0
	}
	return uint32(*v)
}

// grpcLimits warns, once per policy, about the fields proxyless gRPC clients cannot honour; Envoy
// sidecars still apply them.
func grpcLimits(tp *meshv1alpha1.TrafficPolicy, problems *Problems) {
	ref := refOf("TrafficPolicy", tp.Namespace, tp.Name)
	warn := func(field, what string) {
		problems.warn(ref, "UnsupportedByGRPC", field, "applies to Envoy sidecars only: proxyless gRPC clients %s", what)
	}
	spec := &tp.Spec
	if spec.Mirror != nil {
		warn("spec.mirror", "do not mirror requests")
	}
	if spec.RateLimit != nil {
		warn("spec.rateLimit", "enforce no limit (a pod's own Envoy sidecar does, for every caller)")
	}
	if lb := spec.LoadBalancer; lb != nil && lb.HashCookie != nil {
		warn("spec.loadBalancer.hashCookie", "do not hash cookies and spread these calls at random")
	}
	if lb := spec.LoadBalancer; lb != nil && (lb.Policy == meshv1alpha1.LoadBalancerPolicy("Random") || lb.Policy == meshv1alpha1.LoadBalancerPolicy("Maglev")) {
		warn("spec.loadBalancer.policy", fmt.Sprintf("do not implement %s and use %s", lb.Policy, map[meshv1alpha1.LoadBalancerPolicy]string{"Random": "RoundRobin", "Maglev": "RingHash"}[lb.Policy]))
	}
	if cb := spec.CircuitBreaker; cb != nil && (cb.MaxConnections != nil || cb.MaxPendingRequests != nil || cb.MaxRetries != nil) {
		warn("spec.circuitBreaker", "implement maxRequests only (not maxConnections, maxPendingRequests or maxRetries)")
	}
	if od := spec.OutlierDetection; od != nil && od.Consecutive5xxErrors != nil {
		what := "do not count consecutive errors; add failurePercentage to eject failing pods for them too"
		if od.FailurePercentage != nil {
			what = "do not count consecutive errors (they apply failurePercentage)"
		}
		warn("spec.outlierDetection.consecutive5xxErrors", what)
	}
	for i, r := range spec.Routes {
		if r.Match != nil && len(r.Match.QueryParams) > 0 {
			warn(fmt.Sprintf("spec.routes[%d].match.queryParams", i), fmt.Sprintf("skip the route %q (gRPC calls have no query string)", r.Name))
		}
	}
}

// olderThan orders objects by age, then name, so the choice between two is stable.
func olderThan(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetName() < b.GetName()
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
