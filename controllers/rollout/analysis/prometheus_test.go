package analysis_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/controllers/rollout/analysis"
	"github.com/sluice-mesh/sluice/internal/demoapp"
	"github.com/sluice-mesh/sluice/internal/promquery"
	"github.com/sluice-mesh/sluice/internal/testprom"
)

const (
	interval       = 5 * time.Second
	canaryLatency  = 30 * time.Millisecond
	canaryMillis   = 30.0
	callsPerSecond = 200
)

func successRate(min float64) meshv1alpha1.AnalysisMetric {
	return meshv1alpha1.AnalysisMetric{Name: "success-rate", Template: meshv1alpha1.MetricRequestSuccessRate,
		ThresholdRange: meshv1alpha1.ThresholdRange{Min: &min}}
}

func duration(max float64) meshv1alpha1.AnalysisMetric {
	return meshv1alpha1.AnalysisMetric{Name: "p99", Template: meshv1alpha1.MetricRequestDuration,
		ThresholdRange: meshv1alpha1.ThresholdRange{Max: &max}}
}

func spec(minRequests *int32, metrics ...meshv1alpha1.AnalysisMetric) *meshv1alpha1.Analysis {
	return &meshv1alpha1.Analysis{
		Interval:    &metav1.Duration{Duration: interval},
		MinRequests: minRequests,
		Metrics:     metrics,
	}
}

func int32p(v int32) *int32 { return &v }

func ptr(v float64) *float64 { return &v }

func vars(revision string) promquery.Vars {
	return promquery.Vars{Namespace: "shop", Name: "checkout", Service: "checkout", Workload: "checkout",
		CanaryRevision: revision, StableRevision: "aaa"}
}

// byName returns the check's result for the metric.
func byName(t *testing.T, c rollout.Check, name string) rollout.MetricResult {
	t.Helper()
	for _, m := range c.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no result for %s in %+v", name, c)
	return rollout.MetricResult{}
}

func wantValue(t *testing.T, r rollout.MetricResult, verdict rollout.Verdict, lo, hi float64) {
	t.Helper()
	t.Logf("%s = %v (%s)", r.Name, r.Value, r.Verdict)
	if r.Verdict != verdict || r.Value < lo || r.Value > hi || r.Samples != 1 || r.Error != "" {
		t.Errorf("%s = %+v, want %s with a value within [%v, %v]", r.Name, r, verdict, lo, hi)
	}
}

func wantInconclusive(t *testing.T, r rollout.MetricResult, reason rollout.InconclusiveReason) {
	t.Helper()
	if r.Verdict != rollout.VerdictInconclusive || r.Reason != reason {
		t.Errorf("%s = %+v, want Inconclusive %s", r.Name, r, reason)
	}
}

// TestAgainstPrometheus runs checks against a real Prometheus that scrapes demo apps (proxyless gRPC
// servers with gRPC's OpenTelemetry metrics) and Envoy-shaped stats, labelled as the Kubernetes
// scrape configuration labels pods.
func TestAgainstPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped in -short mode")
	}
	// Pods that served a burst of calls long ago (here: before Prometheus started) and none since.
	idle := startPod(t, "shop", "ddd", demoapp.Options{})
	burst(t, idle, 10)
	stable := startPod(t, "shop", "aaa", demoapp.Options{})
	canary := startPod(t, "shop", "bbb", demoapp.Options{ErrorPercent: 20, Latency: canaryLatency})
	// The same revision in another namespace, healthy: it must not count for shop's canary.
	elsewhere := startPod(t, "other", "bbb", demoapp.Options{})
	broken := startPod(t, "shop", "eee", demoapp.Options{ErrorPercent: 100})
	// A pod that exposes both families: gRPC's series win.
	both := startPod(t, "shop", "ggg", demoapp.Options{})
	never := startPod(t, "shop", "ccc", demoapp.Options{})
	// Half the calls fail with UNAVAILABLE (a server fault), the others with NOT_FOUND (the
	// caller's).
	picky := startPod(t, "shop", "hhh", demoapp.Options{ErrorPercent: 50})

	canaryCalls := drive(t, canary, callsPerSecond)
	drive(t, stable, callsPerSecond)
	drive(t, elsewhere, callsPerSecond/2)
	drive(t, broken, callsPerSecond/4)
	drive(t, both, callsPerSecond/4)
	driveWith(t, picky, callsPerSecond/4, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound)}})

	groups := []testprom.TargetGroup{
		idle.target(), stable.target(), canary.target(), elsewhere.target(), broken.target(), both.target(), never.target(), picky.target(),
		targetGroup(serveFakeEnvoy(t), "shop", "checkout-fff-x7k2p", "fff"),
		targetGroup(serveFakeEnvoy(t), "shop", both.name, "ggg"),
	}
	prom := testprom.StartT(t, testprom.Options{TargetGroups: groups, ScrapeInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	// rate() reads low until the window is full of samples: wait for 5s / 500ms = 10 of every
	// series (they all exist from the first scrape on).
	for _, q := range []string{
		`min(count_over_time(grpc_server_call_duration_seconds_count[5s])) >= 10`,
		`min(count_over_time(envoy_cluster_upstream_rq_xx[5s])) >= 10`,
	} {
		if _, err := prom.WaitForSeries(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r := &analysis.Runner{DefaultAddress: prom.URL(), Timeout: 10 * time.Second}

	t.Run("canary: success rate, duration, requests", func(t *testing.T) {
		now := time.Now()
		a := spec(int32p(10), successRate(99), duration(500))
		c := r.Run(ctx, a, vars("bbb"), now)
		if !c.Time.Equal(now) || c.Revision != "bbb" || len(c.Metrics) != 2 {
			t.Fatalf("check = %+v, want time %v, revision bbb and two metrics", c, now)
		}
		// 1 call in 5 fails with UNAVAILABLE; the stable pods' and the other namespace's calls
		// would raise it towards 90 or 100 if they were mixed in.
		sr := byName(t, c, "success-rate")
		wantValue(t, sr, rollout.VerdictFail, 78, 82)
		if !strings.Contains(sr.Query, `pod_template_hash="bbb"`) || !strings.Contains(sr.Query, `[5s]`) || *sr.Min != 99 || sr.Max != nil {
			t.Errorf("success-rate result = %+v, want the rendered query and min 99", sr)
		}
		// Every call takes 30ms and a bit: the p99 lies in gRPC's (30ms, 40ms] bucket on an idle
		// machine. Only the lower bound is firm (a loaded machine slows the tail down); it also
		// says the value is in milliseconds.
		wantValue(t, byName(t, c, "p99"), rollout.VerdictPass, canaryMillis, 500)
		calls := canaryCalls.Load()
		if c.Requests == nil || *c.Requests < callsPerSecond || *c.Requests > calls {
			t.Errorf("requests = %v, want at least %d and at most the %d calls made", c.Requests, callsPerSecond, calls)
		} else {
			t.Logf("requests = %d", *c.Requests)
		}
		if v := rollout.Aggregate(a.Metrics, a.MinRequests, c); v.Verdict != rollout.VerdictFail {
			t.Errorf("Aggregate = %+v, want Fail", v)
		}
	})

	t.Run("stable: not mixed with the canary", func(t *testing.T) {
		c := r.Run(ctx, spec(nil, successRate(99), duration(500)), vars("aaa"), time.Now())
		wantValue(t, byName(t, c, "success-rate"), rollout.VerdictPass, 100, 100)
		wantValue(t, byName(t, c, "p99"), rollout.VerdictPass, 0, 500)
		if c.Requests != nil {
			t.Errorf("requests = %d without minRequests, want nil", *c.Requests)
		}
	})

	t.Run("every call failing reads 0, not no data", func(t *testing.T) {
		c := r.Run(ctx, spec(nil, successRate(99)), vars("eee"), time.Now())
		wantValue(t, byName(t, c, "success-rate"), rollout.VerdictFail, 0, 0)
	})

	t.Run("client faults are not failures", func(t *testing.T) {
		c := r.Run(ctx, spec(nil, successRate(99)), vars("hhh"), time.Now())
		wantValue(t, byName(t, c, "success-rate"), rollout.VerdictFail, 49, 51)
	})

	t.Run("Envoy sidecar", func(t *testing.T) {
		c := r.Run(ctx, spec(int32p(1), successRate(99), duration(500)), vars("fff"), time.Now())
		wantValue(t, byName(t, c, "success-rate"), rollout.VerdictFail, 89.9, 90.1)
		// Every request takes 40ms: the (25ms, 50ms] bucket's p99 is 25 + 0.99 × 25.
		wantValue(t, byName(t, c, "p99"), rollout.VerdictPass, 49.7, 49.8)
		want := (envoyInbound2xx + envoyInbound5xx) * interval.Seconds()
		if c.Requests == nil || math.Abs(float64(*c.Requests)-want) > want/10 {
			t.Errorf("requests = %v, want %v ± 10%%", c.Requests, want)
		}
	})

	t.Run("gRPC series win over Envoy's", func(t *testing.T) {
		c := r.Run(ctx, spec(nil, successRate(99)), vars("ggg"), time.Now())
		wantValue(t, byName(t, c, "success-rate"), rollout.VerdictPass, 100, 100)
	})

	t.Run("too few requests is the engine's call", func(t *testing.T) {
		a := spec(int32p(1_000_000), successRate(50), duration(500))
		c := r.Run(ctx, a, vars("aaa"), time.Now())
		if c.Requests == nil || *c.Requests <= 0 {
			t.Fatalf("requests = %v, want a positive count", c.Requests)
		}
		if v := rollout.Aggregate(a.Metrics, a.MinRequests, c); v.Verdict != rollout.VerdictInconclusive || v.Reason != rollout.ReasonTooFewRequests {
			t.Errorf("Aggregate = %+v, want Inconclusive TooFewRequests", v)
		}
	})

	t.Run("custom queries with variables", func(t *testing.T) {
		a := spec(nil,
			meshv1alpha1.AnalysisMetric{
				Name: "unavailable-ratio",
				Query: `sum(rate(grpc_server_call_duration_seconds_count{namespace="{{ .Namespace }}",pod_template_hash="{{ .CanaryRevision }}",grpc_status="UNAVAILABLE"}[{{ .Interval }}]))
/ sum(rate(grpc_server_call_duration_seconds_count{namespace="{{ .Namespace }}",pod_template_hash="{{ .CanaryRevision }}"}[{{ .Interval }}]))`,
				ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr(0.1)},
			},
			// The stable pod has one series: UnaryCall, OK.
			meshv1alpha1.AnalysisMetric{
				Name:           "stable-series",
				Query:          `count(grpc_server_call_duration_seconds_count{namespace="{{ .Namespace }}",pod_template_hash="{{ .StableRevision }}"})`,
				ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr(1), Max: ptr(1)},
			})
		c := r.Run(ctx, a, vars("bbb"), time.Now())
		res := byName(t, c, "unavailable-ratio")
		wantValue(t, res, rollout.VerdictFail, 0.19, 0.21)
		if !strings.Contains(res.Query, `{namespace="shop",pod_template_hash="bbb"}[5s]`) {
			t.Errorf("query = %s, want the variables filled in", res.Query)
		}
		wantValue(t, byName(t, c, "stable-series"), rollout.VerdictPass, 1, 1)
	})

	t.Run("no traffic", func(t *testing.T) {
		// No series at all: the pod never served a call.
		c := r.Run(ctx, spec(int32p(1), successRate(99), duration(500)), vars("ccc"), time.Now())
		wantInconclusive(t, byName(t, c, "success-rate"), rollout.ReasonNoData)
		wantInconclusive(t, byName(t, c, "p99"), rollout.ReasonNoData)
		if c.Requests == nil || *c.Requests != 0 {
			t.Errorf("requests = %v, want 0", c.Requests)
		}
		// Series, but no call in the last 2s: 0/0.
		v := vars("ddd")
		v.Interval = "2s"
		c = r.Run(ctx, spec(int32p(1), successRate(99), duration(500)), v, time.Now())
		wantInconclusive(t, byName(t, c, "success-rate"), rollout.ReasonNaN)
		wantInconclusive(t, byName(t, c, "p99"), rollout.ReasonNaN)
		if c.Requests == nil || *c.Requests != 0 {
			t.Errorf("requests = %v, want 0", c.Requests)
		}
	})

	t.Run("stopped Prometheus gives errors", func(t *testing.T) {
		if err := prom.Stop(); err != nil {
			t.Fatal(err)
		}
		a := spec(int32p(1), successRate(99), duration(500))
		c := r.Run(ctx, a, vars("bbb"), time.Now())
		for _, m := range c.Metrics {
			wantInconclusive(t, m, rollout.ReasonError)
			if !strings.Contains(m.Error, "querying Prometheus at "+prom.URL()) || m.Query == "" {
				t.Errorf("%s = %+v, want the query and an error naming the address", m.Name, m)
			}
		}
		if c.Requests != nil {
			t.Errorf("requests = %d, want nil (unknown)", *c.Requests)
		}
		if v := rollout.Aggregate(a.Metrics, a.MinRequests, c); v.Reason != rollout.ReasonError {
			t.Errorf("Aggregate = %+v, want Inconclusive Error", v)
		}
	})
}
