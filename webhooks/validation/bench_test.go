package validation

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// BenchmarkLargest judges the largest object of each kind the webhook admits, with every list at
// the CRD's maximum, the regexes at the webhook's bounds, and a crowded namespace: what one
// admission request can cost at most (docs/benchmarks.md).
func BenchmarkLargest(b *testing.B) {
	b.Run("TrafficPolicy", func(b *testing.B) {
		tp, rel := largestTrafficPolicy(b)
		benchmark(b, func() Result { return ValidateTrafficPolicy(tp, nil, rel) })
	})
	b.Run("Rollout", func(b *testing.B) {
		ro, rel := largestRollout(b)
		benchmark(b, func() Result { return ValidateRollout(ro, nil, rel) })
	})
	b.Run("ZeroTrust", func(b *testing.B) {
		zt, rel := largestZeroTrust(b)
		benchmark(b, func() Result { return ValidateZeroTrust(zt, nil, rel) })
	})
}

func benchmark(b *testing.B, validate func() Result) {
	if r := validate(); len(r.Errors) > 0 {
		b.Fatalf("the largest object is refused: %v", r.Errors.ToAggregate())
	}
	b.ReportAllocs()
	for b.Loop() {
		validate()
	}
}

// heaviestRegex is a regex of MaxRegexLength bytes whose program is close to MaxRegexInstructions.
func heaviestRegex(b *testing.B) (string, int) {
	const block = `[a-z]{0,99}`
	var re strings.Builder
	for re.Len()+len(block) <= MaxRegexLength {
		if size, err := programSize(re.String() + block); err != nil || size > MaxRegexInstructions {
			break
		}
		re.WriteString(block)
	}
	size, err := programSize(re.String())
	if err != nil {
		b.Fatal(err)
	}
	return re.String(), size
}

func largestTrafficPolicy(b *testing.B) (*meshv1alpha1.TrafficPolicy, TrafficPolicyRelated) {
	tp := sampleTrafficPolicy(b)
	rel := policyRelated()
	value := strings.Repeat("v", 1024)
	regex, size := heaviestRegex(b)
	// As many as the object's bounds allow.
	regexBudget := min(MaxRegexBytes/len(regex), MaxObjectRegexInstructions/size)
	b.Logf("%d regexes of %d bytes, %d instructions each", regexBudget, len(regex), size)
	nextRegex := func() *string {
		if regexBudget == 0 {
			return nil
		}
		regexBudget--
		return &regex
	}
	tp.Spec.Subsets = nil
	for i := range 16 {
		labels := map[string]string{"version": fmt.Sprintf("v%d", i)}
		for j := range 7 {
			labels[fmt.Sprintf("label-%d", j)] = fmt.Sprintf("value-%d", j)
		}
		tp.Spec.Subsets = append(tp.Spec.Subsets, meshv1alpha1.Subset{Name: fmt.Sprintf("v%d", i), Labels: labels})
	}
	methods := []meshv1alpha1.HTTPMethod{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
	tp.Spec.Routes = nil
	for i := range 32 {
		m := &meshv1alpha1.RouteMatch{PathRegex: nextRegex(), Methods: methods}
		for j := range 16 {
			h := meshv1alpha1.HeaderMatch{Name: fmt.Sprintf("x-h%d", j), Regex: nextRegex()}
			if h.Regex == nil {
				h.Exact = &value
			}
			m.Headers = append(m.Headers, h)
			q := meshv1alpha1.QueryParamMatch{Name: fmt.Sprintf("q%d", j), Regex: nextRegex()}
			if q.Regex == nil {
				q.Exact = &value
			}
			m.QueryParams = append(m.QueryParams, q)
		}
		route := meshv1alpha1.Route{Name: fmt.Sprintf("r%d", i), Match: m}
		for d := range 8 {
			route.Destinations = append(route.Destinations, meshv1alpha1.Destination{Subset: fmt.Sprintf("v%d", d), Weight: ptr.To(int32(12))})
		}
		route.Destinations[0].Weight = ptr.To(int32(16)) // 16 + 7 × 12 = 100
		tp.Spec.Routes = append(tp.Spec.Routes, route)
	}
	rel.PodLabels = nil
	for i := range 1000 {
		rel.PodLabels = append(rel.PodLabels, tp.Spec.Subsets[i%16].Labels)
	}
	for i := range 200 {
		other := meshv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("other-%d", i)}}
		other.Spec.TargetRef.Name = fmt.Sprintf("service-%d", i)
		rel.TrafficPolicies = append(rel.TrafficPolicies, other)
		ro := meshv1alpha1.Rollout{ObjectMeta: other.ObjectMeta}
		ro.Spec.Service.Name = other.Spec.TargetRef.Name
		rel.Rollouts = append(rel.Rollouts, ro)
	}
	return tp, rel
}

func largestRollout(b *testing.B) (*meshv1alpha1.Rollout, RolloutRelated) {
	ro := sampleRollout(b)
	rel := rolloutRelated()
	regex, _ := heaviestRegex(b)
	ro.Spec.Strategy.Canary.HeaderRoute = &meshv1alpha1.HeaderMatch{Name: "x-canary", Regex: &regex}
	ro.Spec.Strategy.Canary.Steps = nil
	for i := range 50 {
		ro.Spec.Strategy.Canary.Steps = append(ro.Spec.Strategy.Canary.Steps, meshv1alpha1.CanaryStep{SetWeight: ptr.To(int32(i * 2))})
	}
	var query strings.Builder
	for query.Len() < 4096-len("{{ .Namespace }}") {
		query.WriteString("{{ .Namespace }}")
	}
	ro.Spec.Analysis.Metrics = nil
	for i := range 20 {
		ro.Spec.Analysis.Metrics = append(ro.Spec.Analysis.Metrics, meshv1alpha1.AnalysisMetric{
			Name: fmt.Sprintf("m%d", i), Query: query.String(), ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(1.0)}})
	}
	for i := range 200 {
		other := meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("other-%d", i)}}
		other.Spec.TargetRef.Name, other.Spec.Service.Name = fmt.Sprintf("d-%d", i), fmt.Sprintf("s-%d", i)
		rel.Rollouts = append(rel.Rollouts, other)
		tp := meshv1alpha1.TrafficPolicy{ObjectMeta: other.ObjectMeta}
		tp.Spec.TargetRef.Name = other.Spec.Service.Name
		rel.TrafficPolicies = append(rel.TrafficPolicies, tp)
	}
	return ro, rel
}

func largestZeroTrust(b *testing.B) (*meshv1alpha1.ZeroTrust, ZeroTrustRelated) {
	zt := sampleZeroTrust(b)
	rel := zeroTrustRelated()
	zt.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}}
	zt.Spec.Rules = nil
	var paths []string
	for i := range 32 {
		paths = append(paths, "/"+strings.Repeat(fmt.Sprint(i%10), 1023))
	}
	var ports []int32
	for i := range 16 {
		ports = append(ports, int32(8080+i))
	}
	svc := service("checkout", checkoutLabels, ports...)
	for i := range 64 {
		rule := meshv1alpha1.AuthorizationRule{Name: fmt.Sprintf("r%d", i),
			To: meshv1alpha1.AuthorizationTarget{Service: fmt.Sprintf("s%d", i), Ports: ports, Paths: paths}}
		for j := range 64 {
			rule.From = append(rule.From, meshv1alpha1.AuthorizationSource{Principal: fmt.Sprintf("spiffe://cluster.local/ns/n%d/sa/s%d", j, j)})
		}
		zt.Spec.Rules = append(zt.Spec.Rules, rule)
		rel.Services[rule.To.Service] = svc
	}
	for i := range 200 {
		other := meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("other-%d", i)}}
		other.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("a%d", i)}}
		rel.ZeroTrusts = append(rel.ZeroTrusts, other)
	}
	return zt, rel
}
