package validation

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestRolloutRules(t *testing.T) {
	cases := []struct {
		name         string
		edit         func(ro *meshv1alpha1.Rollout, rel *RolloutRelated)
		update       bool
		wantErrors   []string
		wantWarnings []string
	}{
		{name: "sample", edit: func(*meshv1alpha1.Rollout, *RolloutRelated) {}},
		{
			name: "deployment and service not there yet",
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) { rel.Deployment, rel.Service = nil, nil },
			wantWarnings: []string{
				"spec.targetRef.name: Deployment shop/checkout does not exist yet; the Rollout waits for it",
				"spec.service.name: Service shop/checkout does not exist yet; traffic is split once it does",
			},
		},
		{
			name: "port not on the service",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) { ro.Spec.Service.Port = 9090 },
			wantErrors: []string{
				"spec.service.port: Invalid value: 9090: Service checkout has no port 9090; use one of its ports (8080)",
			},
		},
		{
			name: "service selects other pods",
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) {
				rel.Service = service("checkout", map[string]string{"app": "payments"}, 8080)
			},
			wantErrors: []string{
				`spec.service.name: Invalid value: "checkout": Service checkout selects app=payments, which the pods of Deployment checkout (labels app=checkout,version=v1) do not carry; fix the Service's selector or the pod template's labels, or name the Service that fronts this Deployment`,
			},
		},
		{
			name: "service without selector",
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) { rel.Service = service("checkout", nil, 8080) },
			wantErrors: []string{
				`spec.service.name: Invalid value: "checkout": Service checkout has no selector, so Sluice cannot tell the canary's pods from the stable ones; give the Service a selector that matches the Deployment's pod labels`,
			},
		},
		{
			name: "target is sluice's stable copy",
			edit: func(ro *meshv1alpha1.Rollout, rel *RolloutRelated) {
				ro.Spec.TargetRef.Name = "checkout-primary"
				rel.Deployment.Name = "checkout-primary"
				rel.DeploymentManagedBy = "checkout"
			},
			wantErrors: []string{
				`spec.targetRef.name: Invalid value: "checkout-primary": Deployment checkout-primary is the stable copy Sluice keeps for Rollout checkout; target the user's Deployment (checkout) instead`,
			},
		},
		{
			name: "second rollout of the same deployment and service",
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) {
				other := meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-2"}}
				other.Spec.TargetRef.Name, other.Spec.Service.Name = "checkout", "checkout"
				gone := *other.DeepCopy()
				gone.Name, gone.DeletionTimestamp = "being-deleted", &metav1.Time{}
				rel.Rollouts = []meshv1alpha1.Rollout{other, gone}
			},
			wantErrors: []string{
				`spec.targetRef.name: Invalid value: "checkout": Rollout checkout-2 already releases Deployment checkout; one Rollout per Deployment: edit that Rollout or delete it first`,
				`spec.service.name: Invalid value: "checkout": Rollout checkout-2 already splits the traffic of Service checkout; one Rollout per Service: edit that Rollout or delete it first`,
			},
		},
		{
			name:   "an existing duplicate can still be edited",
			update: true,
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) {
				other := meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-2"}}
				other.Spec.TargetRef.Name, other.Spec.Service.Name = "checkout", "other"
				rel.Rollouts = []meshv1alpha1.Rollout{other}
			},
			wantWarnings: []string{
				"spec.targetRef.name: Rollout checkout-2 already releases Deployment checkout; one Rollout per Deployment: edit that Rollout or delete it first",
			},
		},
		{
			name: "no analysis",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) { ro.Spec.Analysis = nil },
			wantWarnings: []string{
				"spec.analysis: absent: steps advance on their pauses alone and nothing checks the canary's health; add metrics to roll a bad canary back",
			},
		},
		{
			name: "failureLimit 0 with a short interval",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) {
				ro.Spec.Analysis.FailureLimit = 0
				ro.Spec.Analysis.Interval = &metav1.Duration{Duration: 10 * time.Second}
			},
			wantWarnings: []string{
				"spec.analysis.failureLimit: 0 with a 10s interval rolls the canary back on its first failed check, and short windows hold few requests; allow 1 or 2 failures or lengthen the interval",
			},
		},
		{
			name: "failureLimit 0 with the default interval",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) {
				ro.Spec.Analysis.FailureLimit, ro.Spec.Analysis.Interval = 0, nil
			},
		},
		{
			name: "query with an unknown variable",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) {
				ro.Spec.Analysis.Metrics[2].Query = `sum(rate(x{track="{{ .Track }}"}[{{ .Interval }}]))`
			},
			wantErrors: []string{
				`spec.analysis.metrics[2].query: Invalid value: "sum(rate(x{track=\"{{ .Track }}\"}[{{ .Interval }}]))": uses {{ .Track }}, which is not a variable; the variables are {{ .CanaryRevision }}, {{ .Interval }}, {{ .Name }}, {{ .Namespace }}, {{ .Service }}, {{ .StableRevision }}, {{ .Workload }}`,
			},
		},
		{
			name: "query with a loop",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) {
				ro.Spec.Analysis.Metrics[2].Query = `{{ range .Interval }}up{{ end }}`
			},
			wantErrors: []string{
				`spec.analysis.metrics[2].query: Invalid value: "{{ range .Interval }}up{{ end }}": uses {{range .Interval}}up{{end}}; the only template actions allowed are {{ .CanaryRevision }}, {{ .Interval }}, {{ .Name }}, {{ .Namespace }}, {{ .Service }}, {{ .StableRevision }}, {{ .Workload }}`,
			},
		},
		{
			name: "header route regex that does not compile",
			edit: func(ro *meshv1alpha1.Rollout, _ *RolloutRelated) {
				ro.Spec.Strategy.Canary.HeaderRoute = &meshv1alpha1.HeaderMatch{Name: "x-canary", Regex: ptr.To(`(?=yes)`)}
			},
			wantErrors: []string{
				"spec.strategy.canary.headerRoute.regex: Invalid value: \"(?=yes)\": not a valid RE2 regular expression (error parsing regexp: invalid or unsupported Perl syntax: `(?=`); RE2 has no lookaround or backreferences",
			},
		},
		{
			name: "a policy of the service uses the rollout's subset names",
			edit: func(_ *meshv1alpha1.Rollout, rel *RolloutRelated) {
				tp := meshv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}}
				tp.Spec.TargetRef.Name = "checkout"
				tp.Spec.Subsets = []meshv1alpha1.Subset{{Name: "canary", Labels: map[string]string{"version": "v2"}}}
				rel.TrafficPolicies = []meshv1alpha1.TrafficPolicy{tp}
			},
			wantWarnings: []string{
				`spec.service.name: TrafficPolicy checkout has a subset named "canary", which this Rollout replaces while a canary runs; rename that subset`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ro, rel := sampleRollout(t), rolloutRelated()
			var old *meshv1alpha1.Rollout
			if tc.update {
				old = ro.DeepCopy()
			}
			tc.edit(ro, &rel)
			wantResult(t, ValidateRollout(ro, old, rel), tc.wantErrors, tc.wantWarnings)
		})
	}
}
