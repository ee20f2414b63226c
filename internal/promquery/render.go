// Package promquery is the query side of canary analysis: it renders a metric check's PromQL
// template for one rollout, runs it as an instant query against Prometheus's HTTP API, reduces the
// answer to one number, and judges that number against the check's bounds.
package promquery

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
)

// Vars are the values a query template can use, as {{ .Namespace }}, {{ .Interval }} and so on.
// A template that uses one left empty does not render.
type Vars struct {
	// Namespace of the rollout.
	Namespace string
	// Name of the rollout.
	Name string
	// Service whose traffic is shifted.
	Service string
	// Workload (Deployment) being rolled out.
	Workload string
	// CanaryRevision identifies the new pods (e.g. their pod-template hash).
	CanaryRevision string
	// StableRevision identifies the old pods.
	StableRevision string
	// Interval is the analysis window as a PromQL duration ("30s", "1m", "1m30s"), for range
	// selectors such as rate(x[{{ .Interval }}]).
	Interval string
}

// fields returns every variable by name, the empty ones too.
func (v Vars) fields() map[string]string {
	return map[string]string{
		"Namespace":      v.Namespace,
		"Name":           v.Name,
		"Service":        v.Service,
		"Workload":       v.Workload,
		"CanaryRevision": v.CanaryRevision,
		"StableRevision": v.StableRevision,
		"Interval":       v.Interval,
	}
}

// set returns the variables that have a value: the map the template runs over, so that using an
// empty one fails like using an unknown one.
func (v Vars) set() map[string]string {
	set := map[string]string{}
	for k, val := range v.fields() {
		if val != "" {
			set[k] = val
		}
	}
	return set
}

// ErrMissingKey is wrapped by Render's error when the template uses a variable that is unknown or
// has no value.
var ErrMissingKey = errors.New("template variable not set")

var missingKeyRE = regexp.MustCompile(`map has no entry for key "([^"]*)"`)

// Render executes a Go text/template over vars and returns the PromQL text.
//
// Using a variable that is empty or not one of Vars' fields is an error naming it (wrapping
// ErrMissingKey). Values must not contain quotes, backslashes or control characters, so that a
// value placed inside a PromQL string literal cannot end it; Interval must parse as a PromQL
// duration.
func Render(text string, vars Vars) (string, error) {
	if err := validateVars(vars); err != nil {
		return "", err
	}
	tmpl, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("parsing query template: %w", err)
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, vars.set()); err != nil {
		if m := missingKeyRE.FindStringSubmatch(err.Error()); m != nil {
			key := m[1]
			if _, known := vars.fields()[key]; known {
				return "", fmt.Errorf("query template uses {{ .%s }}, which is empty: %w", key, ErrMissingKey)
			}
			return "", fmt.Errorf("query template uses {{ .%s }}, which is not a variable (known: %s): %w",
				key, strings.Join(slices.Sorted(maps.Keys(vars.fields())), ", "), ErrMissingKey)
		}
		return "", fmt.Errorf("rendering query template: %w", err)
	}
	query := strings.TrimSpace(out.String())
	if query == "" {
		return "", errors.New("query template renders to an empty query")
	}
	return query, nil
}

func validateVars(v Vars) error {
	set := v.set()
	for _, key := range slices.Sorted(maps.Keys(set)) {
		val := set[key]
		if i := strings.IndexFunc(val, unsafeRune); i >= 0 {
			return fmt.Errorf("template variable %s = %q: character %q is not allowed in a query value", key, val, val[i])
		}
	}
	if v.Interval != "" {
		d, err := model.ParseDuration(v.Interval)
		if err != nil {
			return fmt.Errorf("template variable Interval = %q is not a PromQL duration (e.g. 30s, 1m, 1m30s)", v.Interval)
		}
		if d <= 0 {
			return fmt.Errorf("template variable Interval = %q must be longer than zero", v.Interval)
		}
	}
	return nil
}

func unsafeRune(r rune) bool {
	switch r {
	case '"', '\'', '`', '\\':
		return true
	}
	return r < 0x20 || r == 0x7f
}
