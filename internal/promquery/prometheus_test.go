package promquery_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-mesh/sluice/internal/promquery"
	"github.com/sluice-mesh/sluice/internal/testprom"
)

// Rates the metrics server's counters and histogram grow at, per second.
const (
	canaryFailures = 20.0
	stableFailures = 5.0
	requests       = 100.0
)

// checkoutMetrics is a real metrics endpoint on 127.0.0.1 with a counter (two series, by track)
// and a histogram. Before each scrape it brings them up to date with the time since it started, so
// they grow at exactly the rates above however the scrapes are spaced.
type checkoutMetrics struct {
	addr     string
	failures *prometheus.CounterVec
	latency  prometheus.Histogram

	mu       sync.Mutex
	start    time.Time
	observed int                // histogram observations made
	counted  map[string]float64 // counter value by track
}

func serveCheckoutMetrics(t *testing.T) *checkoutMetrics {
	t.Helper()
	m := &checkoutMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "checkout_orders_failed_total",
			Help: "Orders that failed, by track.",
		}, []string{"track"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "checkout_request_duration_seconds",
			Help:    "Checkout request latency.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1},
		}),
		start:   time.Now(),
		counted: map[string]float64{},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.failures, m.latency)
	// Create both series now, at zero, so that the first scrape has them.
	m.failures.WithLabelValues("canary")
	m.failures.WithLabelValues("stable")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.advance()
		metrics.ServeHTTP(w, r)
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return m
}

// advance adds what the counters and the histogram should have gained since the start. Out of
// every 100 requests 90 take 30ms, 8 take 150ms and 2 take 400ms: the p99 lies in (0.25s, 0.5s].
func (m *checkoutMetrics) advance() {
	m.mu.Lock()
	defer m.mu.Unlock()
	elapsed := time.Since(m.start).Seconds()
	set := func(track string, rate float64) {
		total := rate * elapsed
		m.failures.WithLabelValues(track).Add(total - m.counted[track])
		m.counted[track] = total
	}
	set("canary", canaryFailures)
	set("stable", stableFailures)
	for due := int(requests * elapsed); m.observed < due; m.observed++ {
		switch i := m.observed % 100; {
		case i < 90:
			m.latency.Observe(0.03)
		case i < 98:
			m.latency.Observe(0.15)
		default:
			m.latency.Observe(0.4)
		}
	}
}

const window = "3s"

func TestQueryAgainstPrometheus(t *testing.T) {
	m := serveCheckoutMetrics(t)
	prom := testprom.StartT(t, testprom.Options{
		Targets:        []string{m.addr},
		ScrapeInterval: 500 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// rate() divides by the whole window, so it reads low until the series is older than the
	// window: wait for the window to be full (3s / 500ms = 6 samples).
	if _, err := prom.WaitForSeries(ctx, `count_over_time(checkout_orders_failed_total{track="canary"}[`+window+`]) >= 6`); err != nil {
		t.Fatal(err)
	}

	query := func(t *testing.T, q string) (promquery.Result, error) {
		t.Helper()
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		defer qcancel()
		return promquery.Query(qctx, prom.URL(), q, time.Now())
	}
	mustValue := func(t *testing.T, q string) float64 {
		t.Helper()
		res, err := query(t, q)
		if err != nil {
			t.Fatalf("Query(%s): %v", q, err)
		}
		if res.Kind != promquery.KindValue || res.Samples != 1 {
			t.Fatalf("Query(%s) = %+v, want one value", q, res)
		}
		return res.Value
	}

	t.Run("rate of the canary's failures", func(t *testing.T) {
		q, err := promquery.Render(`sum(rate(checkout_orders_failed_total{track="canary"}[{{ .Interval }}]))`,
			promquery.Vars{Interval: window})
		if err != nil {
			t.Fatal(err)
		}
		got := mustValue(t, q)
		t.Logf("%s = %v", q, got)
		if math.Abs(got-canaryFailures)/canaryFailures > 0.1 {
			t.Errorf("canary failure rate = %v/s, want %v/s ± 10%%", got, canaryFailures)
		}
		if v := promquery.Check(promquery.Result{Kind: promquery.KindValue, Value: got}, nil, ptr(canaryFailures*2)); v != promquery.Pass {
			t.Errorf("Check(rate, max %v) = %v, want Pass", canaryFailures*2, v)
		}
	})

	t.Run("p99 latency from the histogram", func(t *testing.T) {
		got := mustValue(t, `histogram_quantile(0.99, sum by (le) (rate(checkout_request_duration_seconds_bucket[`+window+`])))`)
		t.Logf("p99 = %v", got)
		if got <= 0.25 || got > 0.5 {
			t.Errorf("p99 = %vs, want within the (0.25s, 0.5s] bucket", got)
		}
	})

	t.Run("scalar", func(t *testing.T) {
		if got := mustValue(t, "1 + 1"); got != 2 {
			t.Errorf("1 + 1 = %v", got)
		}
	})

	t.Run("missing metric gives NoData", func(t *testing.T) {
		for _, q := range []string{"sluice_no_such_metric", `sum(rate(sluice_no_such_metric_total[` + window + `]))`} {
			res, err := query(t, q)
			if err != nil || res.Kind != promquery.KindNoData || res.Samples != 0 {
				t.Errorf("Query(%s) = %+v, %v; want NoData and no error", q, res, err)
			}
			if v := promquery.Check(res, nil, ptr(1)); v != promquery.Inconclusive {
				t.Errorf("Check(NoData) = %v, want Inconclusive", v)
			}
		}
	})

	t.Run("no data before the series existed", func(t *testing.T) {
		res, err := promquery.Query(ctx, prom.URL(), `sum(checkout_orders_failed_total)`, m.start.Add(-time.Hour))
		if err != nil || res.Kind != promquery.KindNoData {
			t.Errorf("Query(an hour ago) = %+v, %v; want NoData", res, err)
		}
	})

	t.Run("two series must be aggregated", func(t *testing.T) {
		res, err := query(t, `rate(checkout_orders_failed_total[`+window+`])`)
		if !errors.Is(err, promquery.ErrMultipleSeries) || !strings.Contains(err.Error(), "got 2 series") {
			t.Fatalf("Query(two series) error = %v, want ErrMultipleSeries naming 2 series", err)
		}
		if res.Kind != promquery.KindError || res.Samples != 2 {
			t.Errorf("Query(two series) = %+v, want Kind Error and 2 samples", res)
		}
	})

	t.Run("NaN and Inf", func(t *testing.T) {
		for _, q := range []string{"0 / 0", "vector(1) / 0", `sum(rate(checkout_orders_failed_total{track="canary"}[` + window + `])) / 0`} {
			res, err := query(t, q)
			if err != nil || res.Kind != promquery.KindNaN || res.Samples != 1 {
				t.Errorf("Query(%s) = %+v, %v; want NaN", q, res, err)
			}
			if v := promquery.Check(res, nil, nil); v != promquery.Inconclusive {
				t.Errorf("Check(%s) = %v, want Inconclusive", q, v)
			}
		}
	})

	t.Run("bad queries are errors", func(t *testing.T) {
		for q, want := range map[string]string{
			"sum(":                             "bad_data",
			"checkout_orders_failed_total[3s]": "range vector",
			`"text"`:                           "", // the client cannot decode a string result
		} {
			res, err := query(t, q)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), prom.URL()) {
				t.Errorf("Query(%s) error = %v, want one containing %q and the address", q, err, want)
			}
			if res.Kind != promquery.KindError {
				t.Errorf("Query(%s) kind = %v, want Error", q, res.Kind)
			}
		}
	})

	t.Run("stopped Prometheus gives Error", func(t *testing.T) {
		if err := prom.Stop(); err != nil {
			t.Fatal(err)
		}
		res, err := query(t, "1")
		if err == nil || !strings.Contains(err.Error(), "querying Prometheus at "+prom.URL()) {
			t.Fatalf("Query(stopped) error = %v, want one naming the address", err)
		}
		if res.Kind != promquery.KindError || promquery.Check(res, nil, nil) != promquery.Inconclusive {
			t.Errorf("Query(stopped) = %+v, want Kind Error, judged Inconclusive", res)
		}
	})
}

func ptr(v float64) *float64 { return &v }
