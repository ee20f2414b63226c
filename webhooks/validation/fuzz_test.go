package validation

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

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
		if checkQueryTemplate(query) != nil || strings.TrimSpace(query) == "" {
			return
		}
		if _, err := promquery.Render(query, vars); err != nil && strings.TrimSpace(renderText(query)) != "" {
			t.Fatalf("%q admitted, but rendering it fails: %v", query, err)
		}
	})
}

// renderText is the query with its substitutions removed, to tell an empty rendering apart.
func renderText(query string) string {
	for _, v := range queryVariables {
		query = strings.ReplaceAll(query, "{{ ."+v+" }}", "x")
	}
	return query
}

// Any TrafficPolicy spec, decoded from JSON, is judged without a panic, and every error names a
// field and says what is wrong.
func FuzzValidateTrafficPolicy(f *testing.F) {
	addSpec(f, sampleTrafficPolicy(f).Spec)
	f.Fuzz(func(t *testing.T, spec []byte) {
		tp := sampleTrafficPolicy(t)
		if json.Unmarshal(spec, &tp.Spec) != nil {
			return
		}
		checkResult(t, ValidateTrafficPolicy(tp, nil, policyRelated()))
	})
}

func FuzzValidateRollout(f *testing.F) {
	addSpec(f, sampleRollout(f).Spec)
	f.Fuzz(func(t *testing.T, spec []byte) {
		ro := sampleRollout(t)
		if json.Unmarshal(spec, &ro.Spec) != nil || ro.Spec.Strategy.Canary == nil {
			return
		}
		checkResult(t, ValidateRollout(ro, nil, rolloutRelated()))
	})
}

func FuzzValidateZeroTrust(f *testing.F) {
	addSpec(f, sampleZeroTrust(f).Spec)
	f.Fuzz(func(t *testing.T, spec []byte) {
		zt := sampleZeroTrust(t)
		if json.Unmarshal(spec, &zt.Spec) != nil {
			return
		}
		checkResult(t, ValidateZeroTrust(zt, nil, zeroTrustRelated()))
		others := []meshv1alpha1.ZeroTrust{*zt.DeepCopy()}
		others[0].Name = "other"
		MeshWideIdentity(zt, others, "shop")
	})
}

func addSpec(f *testing.F, spec any) {
	data, err := json.Marshal(spec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	for _, e := range r.Errors {
		if e.Field == "" || e.Detail == "" {
			t.Fatalf("an error without a field or a message: %#v", e)
		}
	}
	for _, w := range r.Warnings {
		if !strings.HasPrefix(w, "spec") || len(w) > 512 {
			t.Fatalf("a warning that names no field or is too long: %q", w)
		}
	}
}
