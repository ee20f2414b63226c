package analysis_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/controllers/rollout/analysis"
)

// These need no Prometheus: what goes wrong before a query runs, or with the address. The answers
// of a real Prometheus are in prometheus_test.go.

// closedAddress is an http:// address on 127.0.0.1 that nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	_ = l.Close()
	return addr
}

func TestRunNilAnalysis(t *testing.T) {
	now := time.Now()
	c := (&analysis.Runner{}).Run(t.Context(), nil, vars("bbb"), now)
	if !c.Time.Equal(now) || c.Revision != "bbb" || len(c.Metrics) != 0 || c.Requests != nil {
		t.Errorf("Run(nil) = %+v, want an empty check at now about bbb", c)
	}
}

func TestRunBadMetricsAreErrorsNamingTheField(t *testing.T) {
	a := spec(int32p(5),
		meshv1alpha1.AnalysisMetric{Name: "unknown-template", Template: "request-rate", ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr(1)}},
		meshv1alpha1.AnalysisMetric{Name: "unparsable", Query: `sum(up{job="{{ .Namespace }"})`, ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr(1)}},
		meshv1alpha1.AnalysisMetric{Name: "unknown-variable", Query: `sum(up{job="{{ .Job }}"})`, ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr(1)}},
		meshv1alpha1.AnalysisMetric{Name: "both", Template: meshv1alpha1.MetricRequestDuration, Query: "1", ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr(1)}},
		successRate(99),
	)
	v := vars("")
	c := (&analysis.Runner{DefaultAddress: closedAddress(t)}).Run(t.Context(), a, v, time.Now())
	for name, want := range map[string][]string{
		"unknown-template": {`metric "unknown-template": spec.analysis.metrics[0].template: unknown template "request-rate"`},
		"unparsable":       {`metric "unparsable": spec.analysis.metrics[1].query: parsing query template`},
		"unknown-variable": {`spec.analysis.metrics[2].query`, `{{ .Job }}, which is not a variable`},
		"both":             {`spec.analysis.metrics[3]: set template or query, not both`},
		// A built-in template needs the canary's revision.
		"success-rate": {`spec.analysis.metrics[4].template`, `{{ .CanaryRevision }}, which is empty`},
	} {
		r := byName(t, c, name)
		wantInconclusive(t, r, rollout.ReasonError)
		for _, w := range want {
			if !strings.Contains(r.Error, w) {
				t.Errorf("%s error = %q, want it to contain %q", name, r.Error, w)
			}
		}
		if r.Query != "" || r.Min == nil || *r.Min == 0 {
			t.Errorf("%s = %+v, want no query and the threshold", name, r)
		}
	}
	if c.Requests != nil {
		t.Errorf("requests = %d without a canary revision, want nil", *c.Requests)
	}
}

func TestRunAddressAndInterval(t *testing.T) {
	override := closedAddress(t)
	for _, tt := range []struct {
		name              string
		defaultAddress    string
		prometheus        *meshv1alpha1.PrometheusProvider
		interval          *metav1.Duration
		wantError, window string
	}{
		{name: "no address", wantError: "no Prometheus address", window: "[1m]"},
		{name: "the default", defaultAddress: closedAddress(t), wantError: "querying Prometheus at http://127.0.0.1:", window: "[1m]"},
		{
			name: "the Rollout's own", defaultAddress: "http://prometheus.invalid:9090",
			prometheus: &meshv1alpha1.PrometheusProvider{Address: override}, interval: &metav1.Duration{Duration: 90 * time.Second},
			wantError: "querying Prometheus at " + override, window: "[1m30s]",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &meshv1alpha1.Analysis{Interval: tt.interval, Prometheus: tt.prometheus, Metrics: []meshv1alpha1.AnalysisMetric{successRate(99)}}
			v := vars("bbb")
			v.Interval = ""
			c := (&analysis.Runner{DefaultAddress: tt.defaultAddress}).Run(t.Context(), a, v, time.Now())
			r := byName(t, c, "success-rate")
			wantInconclusive(t, r, rollout.ReasonError)
			if !strings.Contains(r.Error, tt.wantError) || !strings.Contains(r.Query, tt.window) {
				t.Errorf("result = %+v, want an error containing %q and a %s window", r, tt.wantError, tt.window)
			}
		})
	}
}

func TestRunIsBoundedByTimeout(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	a := spec(int32p(1), successRate(99), duration(500))
	start := time.Now()
	c := (&analysis.Runner{DefaultAddress: hang.URL, Timeout: 300 * time.Millisecond}).Run(t.Context(), a, vars("bbb"), time.Now())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %v with a 300ms timeout", took)
	}
	for _, r := range c.Metrics {
		wantInconclusive(t, r, rollout.ReasonError)
		if !strings.Contains(r.Error, "deadline exceeded") {
			t.Errorf("%s error = %q, want a deadline", r.Name, r.Error)
		}
	}
	if c.Requests != nil {
		t.Errorf("requests = %d, want nil", *c.Requests)
	}
}

func TestRunCopiesThresholds(t *testing.T) {
	a := spec(nil, successRate(99))
	c := (&analysis.Runner{}).Run(t.Context(), a, vars("bbb"), time.Now())
	*a.Metrics[0].ThresholdRange.Min = 50
	if r := byName(t, c, "success-rate"); r.Min == nil || *r.Min != 99 || r.Max != nil {
		t.Errorf("result thresholds = %v, %v; want 99 and none, unchanged by a later spec edit", r.Min, r.Max)
	}
}
