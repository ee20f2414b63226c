package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// invalidCases each break one sample with a JSON merge patch (written as YAML; a list in the patch
// replaces the sample's list). The API server must reject the result with a message that contains
// every string in want: the field's path and what to do about it.
var invalidCases = []struct {
	name   string
	sample string
	patch  string
	want   []string
}{
	// Rollout
	{
		name: "step-with-two-actions", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {steps: [{setWeight: 10, pause: {duration: 1m}}]}}}`,
		want:  []string{"spec.strategy.canary.steps[0]", "each step sets exactly one action: setWeight or pause"},
	},
	{
		name: "step-with-no-action", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {steps: [{setWeight: 10}, {}]}}}`,
		want:  []string{"spec.strategy.canary.steps[1]", "each step sets exactly one action"},
	},
	{
		name: "weight-over-100", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {steps: [{setWeight: 150}]}}}`,
		want:  []string{"spec.strategy.canary.steps[0].setWeight", "less than or equal to 100"},
	},
	{
		name: "pause-duration-not-a-duration", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {steps: [{setWeight: 10}, {pause: {duration: soon}}]}}}`,
		want:  []string{"spec.strategy.canary.steps[1].pause.duration", "must be a duration such as 500ms, 30s or 1m30s"},
	},
	{
		name: "no-setweight-step", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {steps: [{pause: {}}]}}}`,
		want:  []string{"spec.strategy.canary.steps", "at least one setWeight step"},
	},
	{
		name: "metric-template-and-query", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {analysis: {metrics: [{name: both, template: request-duration, query: "up", thresholdRange: {max: 1}}]}}`,
		want:  []string{"spec.analysis.metrics[0]", "set exactly one of template (a built-in query) or query (your own PromQL)"},
	},
	{
		name: "unknown-metric-template", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {analysis: {metrics: [{name: errors, template: error-rate, thresholdRange: {max: 1}}]}}`,
		want:  []string{"spec.analysis.metrics[0].template", `Unsupported value: "error-rate"`, `"request-success-rate"`},
	},
	{
		name: "threshold-min-over-max", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {analysis: {metrics: [{name: rate, template: request-success-rate, thresholdRange: {min: 99, max: 90}}]}}`,
		want:  []string{"spec.analysis.metrics[0].thresholdRange", "min must not be greater than max"},
	},
	{
		name: "target-kind-statefulset", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {targetRef: {kind: StatefulSet}}`,
		want:  []string{"spec.targetRef.kind", `Unsupported value: "StatefulSet"`, `"Deployment"`},
	},
	{
		name: "service-port-out-of-range", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {service: {port: 70000}}`,
		want:  []string{"spec.service.port", "less than or equal to 65535"},
	},
	{
		name: "prometheus-address-without-scheme", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {analysis: {prometheus: {address: "prometheus:9090"}}}`,
		want:  []string{"spec.analysis.prometheus.address", "must be an http:// or https:// URL"},
	},
	{
		name: "missing-strategy", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: null}`,
		want:  []string{"spec.strategy", "Required value"},
	},
	{
		name: "header-route-two-matchers", sample: "mesh_v1alpha1_rollout.yaml",
		patch: `spec: {strategy: {canary: {headerRoute: {regex: "t.*"}}}}`,
		want:  []string{"spec.strategy.canary.headerRoute", "set exactly one of exact, prefix, regex or present"},
	},
	// TrafficPolicy
	{
		name: "weights-do-not-add-up", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}], routes: [{name: split, destinations: [{subset: v1, weight: 60}, {subset: v2, weight: 30}]}]}`,
		want:  []string{"spec.routes[0].destinations", "destination weights must add up to 100"},
	},
	{
		name: "unknown-subset", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, destinations: [{subset: v3}]}]}`,
		want:  []string{"spec.routes", "every destination's subset must be one of the names in spec.subsets"},
	},
	{
		name: "path-and-path-prefix", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, match: {path: /api/x, pathPrefix: /api/}, destinations: [{subset: v2}]}]}`,
		want:  []string{"spec.routes[0].match", "set at most one of path, pathPrefix or pathRegex"},
	},
	{
		name: "path-prefix-without-slash", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, match: {pathPrefix: api}, destinations: [{subset: v2}]}]}`,
		want:  []string{"spec.routes[0].match.pathPrefix", "must start with /"},
	},
	{
		name: "unknown-retry-condition", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {retries: {retryOn: [500s]}}`,
		want:  []string{"spec.retries.retryOn[0]", `Unsupported value: "500s"`, `"connect-failure"`},
	},
	{
		name: "per-try-timeout-over-timeout", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {retries: {perTryTimeout: 10s}}`,
		want:  []string{"spec.retries.perTryTimeout", "retries.perTryTimeout must not be longer than timeout"},
	},
	{
		name: "abort-status-out-of-range", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {faultInjection: {abort: {httpStatus: 999}}}`,
		want:  []string{"spec.faultInjection.abort.httpStatus", "less than or equal to 599"},
	},
	{
		name: "unknown-load-balancer", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {loadBalancer: {policy: Fastest}}`,
		want:  []string{"spec.loadBalancer.policy", `Unsupported value: "Fastest"`, `"LeastRequest"`},
	},
	{
		name: "hash-header-without-hash-policy", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {loadBalancer: {hashHeader: x-user}}`,
		want:  []string{"spec.loadBalancer.hashHeader", "hashHeader needs policy RingHash or Maglev"},
	},
	{
		name: "empty-fault-injection", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {faultInjection: {delay: null, abort: null}}`,
		want:  []string{"spec.faultInjection", "set delay, abort or both"},
	},
	{
		name: "path-and-path-regex", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, match: {path: /api/x, pathRegex: "^/api/.*"}, destinations: [{subset: v2}]}]}`,
		want:  []string{"spec.routes[0].match", "set at most one of path, pathPrefix or pathRegex"},
	},
	{
		name: "header-present-false", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, match: {headers: [{name: x-user, present: false}]}, destinations: [{subset: v2}]}]}`,
		want:  []string{"spec.routes[0].match.headers[0]", "present must be true"},
	},
	{
		name: "query-param-two-matchers", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {routes: [{name: beta, match: {queryParams: [{name: v, exact: "2", present: true}]}, destinations: [{subset: v2}]}]}`,
		want:  []string{"spec.routes[0].match.queryParams[0]", "set exactly one of exact, prefix, regex or present"},
	},
	{
		name: "abort-http-and-grpc-status", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {faultInjection: {abort: {grpcStatus: UNAVAILABLE}}}`,
		want:  []string{"spec.faultInjection.abort", "set exactly one of httpStatus (such as 503) or grpcStatus (such as UNAVAILABLE)"},
	},
	{
		name: "abort-unknown-grpc-status", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {faultInjection: {abort: {httpStatus: null, grpcStatus: BUSY}}}`,
		want:  []string{"spec.faultInjection.abort.grpcStatus", `Unsupported value: "BUSY"`, `"UNAVAILABLE"`},
	},
	{
		name: "outlier-detection-without-rule", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {outlierDetection: {consecutive5xxErrors: null}}`,
		want:  []string{"spec.outlierDetection", "set consecutive5xxErrors, failurePercentage or both"},
	},
	{
		name: "failure-percentage-over-100", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {outlierDetection: {failurePercentage: {threshold: 150}}}`,
		want:  []string{"spec.outlierDetection.failurePercentage.threshold", "less than or equal to 100"},
	},
	{
		name: "hash-cookie-without-hash-policy", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {loadBalancer: {hashCookie: {name: session}}}`,
		want:  []string{"spec.loadBalancer.hashCookie", "hashCookie needs policy RingHash or Maglev"},
	},
	{
		name: "hash-header-and-cookie", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {loadBalancer: {policy: RingHash, hashHeader: x-user, hashCookie: {name: session}}}`,
		want:  []string{"spec.loadBalancer", "set hashHeader or hashCookie, not both"},
	},
	{
		name: "retry-budget-over-100", sample: "mesh_v1alpha1_trafficpolicy.yaml",
		patch: `spec: {retries: {budgetPercent: 120}}`,
		want:  []string{"spec.retries.budgetPercent", "less than or equal to 100"},
	},
	// ZeroTrust
	{
		name: "unknown-mtls-mode", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {mtls: {mode: STRIKT}}`,
		want:  []string{"spec.mtls.mode", `Unsupported value: "STRIKT"`, `"STRICT", "PERMISSIVE", "DISABLE"`},
	},
	{
		name: "strict-without-identity", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {identity: null}`,
		want:  []string{"spec.identity", "identity is required unless mtls.mode is DISABLE"},
	},
	{
		name: "renew-before-longer-than-duration", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {identity: {renewBefore: 48h}}`,
		want:  []string{"spec.identity.renewBefore", "renewBefore must be shorter than duration"},
	},
	{
		name: "principal-with-service-account", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {rules: [{name: r, to: {service: checkout}, from: [{principal: "spiffe://cluster.local/ns/a/sa/b", serviceAccount: b}]}]}`,
		want:  []string{"spec.rules[0].from[0]", "set principal alone, or serviceAccount and/or namespace"},
	},
	{
		name: "principal-not-spiffe", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {rules: [{name: r, to: {service: checkout}, from: [{principal: "cluster.local/ns/a/sa/b"}]}]}`,
		want:  []string{"spec.rules[0].from[0].principal", "spiffe://"},
	},
	{
		name: "path-without-slash", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {rules: [{name: r, to: {service: checkout, paths: ["api/*"]}, from: [{namespace: web}]}]}`,
		want:  []string{"spec.rules[0].to.paths[0]", "a path starts with /"},
	},
	{
		name: "issuer-kind-unknown", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {identity: {issuerRef: {kind: Vault}}}`,
		want:  []string{"spec.identity.issuerRef.kind", `Unsupported value: "Vault"`, `"ClusterIssuer"`},
	},
	{
		name: "rule-without-callers", sample: "mesh_v1alpha1_zerotrust.yaml",
		patch: `spec: {rules: [{name: r, to: {service: checkout}, from: []}]}`,
		want:  []string{"spec.rules[0].from", "should have at least 1 items"},
	},
}

func TestInvalidObjectsAreRejected(t *testing.T) {
	ensureNamespace(t, "invalid")
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := patched(t, sample(t, tc.sample), tc.patch)
			obj.SetNamespace("invalid")
			obj.SetName(tc.name)

			err := env.Client.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("the API server accepted %s", tc.name)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the rejection does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// patched applies a JSON merge patch, written as YAML, to obj.
func patched(t *testing.T, obj *unstructured.Unstructured, patchYAML string) *unstructured.Unstructured {
	t.Helper()
	original, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON([]byte(patchYAML))
	if err != nil {
		t.Fatalf("patch %q: %v", patchYAML, err)
	}
	merged, err := jsonpatch.MergePatch(original, patch)
	if err != nil {
		t.Fatal(err)
	}
	out := &unstructured.Unstructured{}
	if err := json.Unmarshal(merged, &out.Object); err != nil {
		t.Fatal(fmt.Errorf("merged object: %w", err))
	}
	return out
}
