package promquery

import (
	"errors"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	vars := Vars{
		Namespace:      "shop",
		Name:           "checkout",
		Service:        "checkout",
		Workload:       "checkout-v2",
		CanaryRevision: "7d9f8c",
		StableRevision: "5b4c3a",
		Interval:       "30s",
	}
	tests := []struct {
		name     string
		template string
		vars     Vars
		want     string
		wantErr  string // substring; empty means no error
		missing  bool   // the error wraps ErrMissingKey
	}{{
		name:     "sample query",
		template: `sum(rate(checkout_orders_failed_total{track="canary"}[{{ .Interval }}]))`,
		vars:     vars,
		want:     `sum(rate(checkout_orders_failed_total{track="canary"}[30s]))`,
	}, {
		name: "every variable",
		template: `{{ .Namespace }} {{ .Name }} {{ .Service }} {{ .Workload }} ` +
			`{{ .CanaryRevision }} {{ .StableRevision }} {{ .Interval }}`,
		vars: vars,
		want: "shop checkout checkout checkout-v2 7d9f8c 5b4c3a 30s",
	}, {
		name:     "no variables",
		template: "  vector(1)\n",
		want:     "vector(1)",
	}, {
		name:     "compound interval",
		template: "[{{ .Interval }}]",
		vars:     Vars{Interval: "1m30s"},
		want:     "[1m30s]",
	}, {
		name:     "empty variable",
		template: `x{pod_template_hash="{{ .CanaryRevision }}"}`,
		vars:     Vars{Namespace: "shop"},
		wantErr:  "uses {{ .CanaryRevision }}, which is empty",
		missing:  true,
	}, {
		name:     "unknown variable",
		template: `x{ns="{{ .Namspace }}"}`,
		vars:     vars,
		wantErr:  "uses {{ .Namspace }}, which is not a variable (known: CanaryRevision, Interval, Name, Namespace, Service, StableRevision, Workload)",
		missing:  true,
	}, {
		name:     "bad template",
		template: "{{ .Interval ",
		vars:     vars,
		wantErr:  "parsing query template",
	}, {
		name:     "interval not a duration",
		template: "[{{ .Interval }}]",
		vars:     Vars{Interval: "30 seconds"},
		wantErr:  `Interval = "30 seconds" is not a PromQL duration`,
	}, {
		name:     "zero interval",
		template: "[{{ .Interval }}]",
		vars:     Vars{Interval: "0s"},
		wantErr:  "must be longer than zero",
	}, {
		name:     "quote in a value",
		template: `x{ns="{{ .Namespace }}"}`,
		vars:     Vars{Namespace: `a"} or vector(1) #`},
		wantErr:  `template variable Namespace = "a\"} or vector(1) #": character '"' is not allowed`,
	}, {
		name:     "newline in a value, even one the template does not use",
		template: "vector(1)",
		vars:     Vars{Service: "a\nb"},
		wantErr:  "template variable Service",
	}, {
		name:     "renders to nothing",
		template: "{{/* nothing */}}  ",
		wantErr:  "empty query",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.template, tt.vars)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Render() error = %v", err)
				}
				if got != tt.want {
					t.Fatalf("Render() = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Render() = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
			if errors.Is(err, ErrMissingKey) != tt.missing {
				t.Errorf("errors.Is(err, ErrMissingKey) = %v, want %v", !tt.missing, tt.missing)
			}
		})
	}
}
