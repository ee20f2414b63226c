package validation

import (
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/promquery"
)

// The fuzzers' seeds are in testdata/fuzz/<Fuzzer>/ and the samples; run one with
// `go test ./webhooks/validation -run '^$' -fuzz FuzzRegex -fuzztime 30s`.

// A regex the bounds accept compiles in Go's RE2 too, and one Go's RE2 refuses is refused.
func FuzzRegex(f *testing.F) {
	f.Add(`^/api/v[0-9]+/orders$`)
	f.Fuzz(func(t *testing.T, expr string) {
		size, err := programSize(expr)
		_, goErr := regexp.Compile(expr)
		switch {
		case err == nil && goErr != nil:
			t.Fatalf("%q admitted (size %d), but Go's regexp refuses it: %v", expr, size, goErr)
		case err == nil && size > MaxRegexInstructions:
			t.Fatalf("%q admitted with %d instructions, above the bound", expr, size)
		case err != nil && err.Error() == "":
			t.Fatalf("%q refused without a message", expr)
		}
	})
}

// A query template the webhook admits renders at analysis time.
func FuzzQueryTemplate(f *testing.F) {
	f.Add(`sum(rate(x{namespace="{{ .Namespace }}"}[{{ .Interval }}]))`)
	vars := promquery.Vars{Namespace: "shop", Name: "checkout", Service: "checkout", Workload: "checkout",
		CanaryRevision: "abc", StableRevision: "def", Interval: "30s"}
	f.Fuzz(func(t *testing.T, query string) {
		if checkQueryTemplate(query) != nil {
			return
		}
		if _, err := promquery.Render(query, vars); err != nil {
			t.Fatalf("%q admitted, but rendering it fails: %v", query, err)
		}
	})
}

// The object fuzzers put the fuzzed values into a sample and its cluster, so that the mutations
// reach the rules (random JSON would rarely decode), and check that the rules never panic and that
// every error names a field and says what is wrong.

func FuzzValidateTrafficPolicy(f *testing.F) {
	base, baseRel, rollout := sampleTrafficPolicy(f), policyRelated(), sampleRollout(f)
	f.Add("^/api/v[0-9]+$", "beta|gamma", "version", "v2", "canary", int32(3), int64(1e9), int64(5e9), true, uint8(0))
	f.Fuzz(func(t *testing.T, pathRegex, headerRegex, labelKey, labelValue, subset string, attempts int32,
		perTry, timeout int64, nonIdempotent bool, shape uint8) {
		tp, rel := base.DeepCopy(), baseRel
		m := tp.Spec.Routes[0].Match
		m.PathPrefix, m.PathRegex = nil, &pathRegex
		m.Headers = append(m.Headers, meshv1alpha1.HeaderMatch{Name: "x-fuzz", Regex: &headerRegex})
		m.QueryParams = []meshv1alpha1.QueryParamMatch{{Name: "q", Regex: &headerRegex}}
		tp.Spec.Subsets[0].Name, tp.Spec.Subsets[0].Labels = subset, map[string]string{labelKey: labelValue}
		tp.Spec.Retries.Attempts, tp.Spec.Retries.RetryNonIdempotent = attempts, nonIdempotent
		tp.Spec.Retries.PerTryTimeout.Duration, tp.Spec.Timeout.Duration = time.Duration(perTry), time.Duration(timeout)
		if shape&1 != 0 { // a catch-all route first
			tp.Spec.Routes = append([]meshv1alpha1.Route{{Name: subset}}, tp.Spec.Routes...)
		}
		if shape&2 != 0 { // a Rollout of the Service
			rel.Rollouts = []meshv1alpha1.Rollout{*rollout}
		}
		if shape&4 != 0 { // an empty cluster
			rel = TrafficPolicyRelated{}
		}
		if shape&8 != 0 {
			tp.Spec.Mirror.Port = &attempts
		}
		checkResult(t, ValidateTrafficPolicy(tp, nil, rel))
	})
}

func FuzzValidateRollout(f *testing.F) {
	base, baseRel := sampleRollout(f), rolloutRelated()
	f.Add(`sum(rate(x[{{ .Interval }}]))`, "yes|true", "checkout", "checkout", int32(8080), int32(0), int64(10e9), "app", uint8(0))
	f.Fuzz(func(t *testing.T, query, headerRegex, target, svc string, port, failureLimit int32, interval int64,
		selectorKey string, shape uint8) {
		ro, rel := base.DeepCopy(), baseRel
		ro.Spec.Analysis.Metrics[2].Query = query
		ro.Spec.Strategy.Canary.HeaderRoute = &meshv1alpha1.HeaderMatch{Name: "x-canary", Regex: &headerRegex}
		ro.Spec.TargetRef.Name, ro.Spec.Service.Name, ro.Spec.Service.Port = target, svc, port
		ro.Spec.Analysis.FailureLimit = failureLimit
		ro.Spec.Analysis.Interval.Duration = time.Duration(interval)
		rel.Service = service(svc, map[string]string{selectorKey: "checkout"}, 8080)
		if shape&1 != 0 {
			rel.DeploymentManagedBy = svc
		}
		if shape&2 != 0 {
			other := *base.DeepCopy()
			other.Name = target
			rel.Rollouts = []meshv1alpha1.Rollout{other}
		}
		if shape&4 != 0 {
			rel = RolloutRelated{}
		}
		if shape&8 != 0 {
			ro.Spec.Analysis = nil
		}
		var old *meshv1alpha1.Rollout
		if shape&16 != 0 {
			old = ro.DeepCopy()
		}
		checkResult(t, ValidateRollout(ro, old, rel))
	})
}

func FuzzValidateZeroTrust(f *testing.F) {
	base, baseRel := sampleZeroTrust(f), zeroTrustRelated()
	f.Add("app", "In", "web", "spiffe://partner.example/ns/a/sa/b", int32(8080), "PERMISSIVE", uint8(0))
	f.Fuzz(func(t *testing.T, key, operator, value, principal string, port int32, mode string, shape uint8) {
		zt, rel := base.DeepCopy(), baseRel
		zt.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: key, Operator: metav1.LabelSelectorOperator(operator), Values: []string{value}}}}
		zt.Spec.Rules[0].From[2].Principal = principal
		zt.Spec.Rules[0].To.Ports = []int32{port}
		zt.Spec.MTLS.Mode = meshv1alpha1.MTLSMode(mode)
		rel.Issuer = IssuerState(shape % 5)
		if shape&8 != 0 {
			other := *zt.DeepCopy()
			other.Name = "other"
			rel.ZeroTrusts = []meshv1alpha1.ZeroTrust{other}
		}
		if shape&16 != 0 {
			zt.Spec.Identity = nil
		}
		checkResult(t, ValidateZeroTrust(zt, nil, rel))
		MeshWideIdentity(zt, rel.ZeroTrusts, zt.Namespace)
	})
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	for _, e := range r.Errors {
		if e.Field == "" || e.Detail == "" {
			t.Fatalf("an error without a field or a message: %#v", e)
		}
	}
	for _, w := range r.Warnings {
		if !strings.HasPrefix(w, "spec") && !strings.HasSuffix(w, "warnings are left out") || len([]rune(w)) > MaxWarningLength {
			t.Fatalf("a warning that names no field or is too long: %q", w)
		}
	}
}
