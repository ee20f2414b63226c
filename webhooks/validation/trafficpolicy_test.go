package validation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestTrafficPolicyRules(t *testing.T) {
	cases := []struct {
		name         string
		edit         func(tp *meshv1alpha1.TrafficPolicy, rel *TrafficPolicyRelated)
		update       bool
		wantErrors   []string
		wantWarnings []string
	}{
		{
			name: "sample", edit: func(*meshv1alpha1.TrafficPolicy, *TrafficPolicyRelated) {},
			wantWarnings: []string{"spec.faultInjection.abort.percent: 1% of requests fail on purpose; remove faultInjection when the test is over"},
		},
		{
			name: "services not there yet",
			edit: func(_ *meshv1alpha1.TrafficPolicy, rel *TrafficPolicyRelated) {
				rel.Service, rel.PodLabels, rel.MirrorService = nil, nil, nil
			},
			wantWarnings: []string{
				"spec.targetRef.name: Service shop/checkout does not exist yet; the policy applies once it does",
				"spec.mirror.service: Service shop/checkout-shadow does not exist yet; nothing is mirrored until it does",
			},
		},
		{
			name: "second policy for the service",
			edit: func(_ *meshv1alpha1.TrafficPolicy, rel *TrafficPolicyRelated) {
				other := meshv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-retries"}}
				other.Spec.TargetRef.Name = "checkout"
				rel.TrafficPolicies = []meshv1alpha1.TrafficPolicy{other}
			},
			wantErrors: []string{
				`spec.targetRef.name: Invalid value: "checkout": TrafficPolicy checkout-retries already targets Service checkout; one policy per Service: merge the two into checkout-retries or delete it first`,
			},
		},
		{
			name: "subset contradicts the service's selector",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Subsets[0].Labels = map[string]string{"app": "payments", "version": "v2"}
			},
			wantErrors: []string{
				`spec.subsets[0].labels[app]: Invalid value: "payments": Service checkout selects app=checkout, so no pod of it has app=payments; pick labels that tell the Service's pods apart, such as version`,
			},
		},
		{
			name: "subset selects no pod yet",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Subsets[0].Labels = map[string]string{"version": "v3"}
			},
			wantWarnings: []string{
				"spec.subsets[0].labels: none of the 2 pods of Service checkout carries version=v3 yet; requests routed to subset v2 fail until one does",
			},
		},
		{
			name: "subset and route names a rollout of the service takes",
			edit: func(tp *meshv1alpha1.TrafficPolicy, rel *TrafficPolicyRelated) {
				tp.Spec.Subsets[0].Name = "canary"
				tp.Spec.Routes[0].Destinations[0].Subset = "canary"
				tp.Spec.Routes[0].Name = "canary-header"
				ro := sampleRollout(t)
				rel.Rollouts = []meshv1alpha1.Rollout{*ro}
			},
			wantErrors: []string{
				`spec.subsets[0].name: Invalid value: "canary": Rollout checkout uses the subsets stable and canary of Service checkout for its revisions; rename this subset`,
				`spec.routes[0].name: Invalid value: "canary-header": Rollout checkout's header route is named canary-header; rename this route`,
			},
		},
		{
			name: "mirror port not on the mirror service",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Mirror.Port = ptr.To(int32(9090))
			},
			wantErrors: []string{
				"spec.mirror.port: Invalid value: 9090: Service checkout-shadow has no port 9090; use one of its ports (8080), or leave port out to mirror to the request's port",
			},
		},
		{
			name: "mirror to itself",
			edit: func(tp *meshv1alpha1.TrafficPolicy, rel *TrafficPolicyRelated) {
				tp.Spec.Mirror.Service = "checkout"
				rel.MirrorService = rel.Service
			},
			wantWarnings: []string{
				"spec.mirror.service: mirrors the policy's own Service: every copied request reaches the same pods twice; mirror to a separate Service such as a shadow deployment's",
			},
		},
		{
			name: "retries on POST and longer than the timeout",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Retries.RetryNonIdempotent = true
				tp.Spec.Retries.PerTryTimeout = &metav1.Duration{Duration: 2 * time.Second}
			},
			wantWarnings: []string{
				"spec.retries.retryNonIdempotent: POST and PATCH requests are retried too: a retry after a lost response applies them twice; make them idempotent (an idempotency key) or turn this off",
				"spec.retries.attempts: 4 tries of up to 2s take longer than the 5s timeout, which cuts the last ones short; lower attempts or perTryTimeout, or raise timeout",
			},
		},
		{
			name: "delay not shorter than the timeout, every pod ejectable",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.FaultInjection.Delay.FixedDelay.Duration = 5 * time.Second
				tp.Spec.OutlierDetection.MaxEjectionPercent = 100
			},
			wantWarnings: []string{
				"spec.faultInjection.delay.fixedDelay: 5s is not shorter than the 5s timeout, so every delayed request times out",
				"spec.outlierDetection.maxEjectionPercent: 100 lets every pod be ejected at once, leaving callers no pod at all; keep it below 100 (such as 50)",
			},
		},
		{
			name: "route after a catch-all",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Routes = append([]meshv1alpha1.Route{{Name: "all", Destinations: []meshv1alpha1.Destination{{Weight: ptr.To(int32(100))}}}}, tp.Spec.Routes...)
			},
			wantWarnings: []string{
				"spec.routes[1]: never used: route all before it has no match and takes every request; move it last",
			},
		},
		{
			name: "regexes: invalid, too big, and above Envoy's program size",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				tp.Spec.Routes[0].Match.PathPrefix = nil
				tp.Spec.Routes[0].Match.PathRegex = ptr.To(`/api/(v1|v2`)
				tp.Spec.Routes[0].Match.Headers = []meshv1alpha1.HeaderMatch{
					{Name: "x-a", Regex: ptr.To(`(abcdef){1000}`)},
					{Name: "x-b", Regex: ptr.To(`[a-z]{1,200}`)},
				}
				tp.Spec.Routes[0].Match.QueryParams = []meshv1alpha1.QueryParamMatch{{Name: "v", Regex: ptr.To(`\d+`)}}
			},
			wantErrors: []string{
				"spec.routes[0].match.pathRegex: Invalid value: \"/api/(v1|v2\": not a valid RE2 regular expression (error parsing regexp: missing closing ): `/api/(v1|v2`); RE2 has no lookaround or backreferences",
				`spec.routes[0].match.headers[0].regex: Invalid value: "(abcdef){1000}": the regular expression compiles to more than 5000 instructions; simplify it (smaller repetition counts such as {1,10} instead of {1,1000}, fewer nested groups)`,
			},
			wantWarnings: []string{
				"spec.routes[0].match.headers[1].regex: compiles to about 401 RE2 instructions; Envoy rejects regexes above re2.max_program_size.error_level (100 by default): simplify it or raise that runtime limit",
			},
		},
		{
			name: "regexes add up to more than the bound",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				long := strings.Repeat("a", MaxRegexLength)
				var headers []meshv1alpha1.HeaderMatch
				for range 16 {
					headers = append(headers, meshv1alpha1.HeaderMatch{Name: "x", Regex: &long})
				}
				var routes []meshv1alpha1.Route
				for i := range 5 {
					routes = append(routes, meshv1alpha1.Route{Name: string(rune('a' + i)), Match: &meshv1alpha1.RouteMatch{Headers: headers},
						Destinations: []meshv1alpha1.Destination{{Weight: ptr.To(int32(100))}}})
				}
				tp.Spec.Routes = routes
			},
			wantErrors: []string{
				`spec.routes[4].match.headers[0].regex: Invalid value: "` + strings.Repeat("a", 64) + `...": the object's regular expressions add up to more than 65536 bytes; use fewer or shorter ones (prefix or exact matches where they do)`,
			},
			// Each 1024-byte literal is above Envoy's program size: one warning per regex compiled,
			// 64, cut to MaxWarnings.
			wantWarnings: append(envoyWarnings(MaxWarnings-1), "55 more warnings are left out"),
		},
		{
			name: "regexes compile to more than the bound together",
			edit: func(tp *meshv1alpha1.TrafficPolicy, _ *TrafficPolicyRelated) {
				heavy := strings.Repeat(`[a-z]{0,99}`, 16) // 3170 instructions
				var headers []meshv1alpha1.HeaderMatch
				for range 16 {
					headers = append(headers, meshv1alpha1.HeaderMatch{Name: "x", Regex: &heavy})
				}
				tp.Spec.Routes[0].Match.Headers = headers
				tp.Spec.Routes = append(tp.Spec.Routes, tp.Spec.Routes[0], tp.Spec.Routes[0])
				tp.Spec.Routes[1].Name, tp.Spec.Routes[2].Name = "beta-2", "beta-3"
			},
			wantErrors: []string{
				`spec.routes[1].match.headers[15].regex: Invalid value: "` + heavyShort + `...": the object's regular expressions compile to more than 100000 instructions together; use fewer or simpler ones (prefix or exact matches where they do)`,
			},
			wantWarnings: append(envoyWarningsOf(MaxWarnings-1, 3170), "22 more warnings are left out"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, rel := sampleTrafficPolicy(t), policyRelated()
			if tc.name != "sample" {
				tp.Spec.FaultInjection.Abort = nil // its warning is the sample case's
			}
			var old *meshv1alpha1.TrafficPolicy
			if tc.update {
				old = tp.DeepCopy()
			}
			tc.edit(tp, &rel)
			wantResult(t, ValidateTrafficPolicy(tp, old, rel), tc.wantErrors, tc.wantWarnings)
		})
	}
}

// heavyShort is the start of the heavy regex as an error message shows it.
var heavyShort = strings.Repeat(`[a-z]{0,99}`, 6)[:64]

func envoyWarnings(n int) []string { return envoyWarningsOf(n, 1026) }

func envoyWarningsOf(n, size int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("spec.routes[%d].match.headers[%d].regex: compiles to about %d RE2 instructions; "+
			"Envoy rejects regexes above re2.max_program_size.error_level (100 by default): simplify it or raise that runtime limit", i/16, i%16, size))
	}
	return out
}
