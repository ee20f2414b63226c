package testprom_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/testprom"
)

// serveMetrics serves a registry with one gauge set to value on 127.0.0.1 and returns host:port.
func serveMetrics(t *testing.T, value float64) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "testprom_value", Help: "A value for the test."})
	g.Set(value)
	reg.MustRegister(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func scalarOf(t *testing.T, v model.Value) float64 {
	t.Helper()
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		t.Fatalf("want one sample, got %v", v)
	}
	return float64(vec[0].Value)
}

func TestScrapeAndRetarget(t *testing.T) {
	first, second := serveMetrics(t, 1), serveMetrics(t, 2)
	prom := testprom.StartT(t, testprom.Options{
		Targets:        []string{first},
		ScrapeInterval: 200 * time.Millisecond,
		ExtraLabels:    map[string]string{"cluster": "test"},
	})
	if !strings.HasPrefix(prom.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want a loopback URL", prom.URL())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	v, err := prom.WaitForSeries(ctx, `testprom_value{job="sluice-test", cluster="test", instance="`+first+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := scalarOf(t, v); got != 1 {
		t.Errorf("first target's value = %v, want 1", got)
	}

	if err := prom.SetTargets(ctx, second); err != nil {
		t.Fatal(err)
	}
	v, err = prom.WaitForSeries(ctx, `testprom_value{instance="`+second+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := scalarOf(t, v); got != 2 {
		t.Errorf("second target's value = %v, want 2", got)
	}
	// The first target is gone from the configuration, so its series goes stale.
	if _, err := prom.WaitForSeries(ctx, `absent(testprom_value{instance="`+first+`"})`); err != nil {
		t.Fatal(err)
	}
}

func TestSetTargetsRejectsNonLoopback(t *testing.T) {
	prom := testprom.StartT(t, testprom.Options{})
	err := prom.SetTargets(t.Context(), "192.0.2.1:9100")
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("SetTargets(192.0.2.1:9100) = %v, want a loopback error", err)
	}
}

func TestWaitForSeriesGivesUp(t *testing.T) {
	prom := testprom.StartT(t, testprom.Options{ScrapeInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := prom.WaitForSeries(ctx, "no_such_metric")
	if err == nil || !strings.Contains(err.Error(), "empty result") {
		t.Fatalf("WaitForSeries(no_such_metric) = %v, want a timeout naming the empty result", err)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped in -short mode")
	}
	prom, err := testprom.Start(t.Context(), testprom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := prom.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	resp, err := http.Get(prom.URL() + "/-/ready") //nolint:noctx // a refused connection returns at once
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("Prometheus still answers after Stop")
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prometheus")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStartReportsEarlyExit(t *testing.T) {
	bin := script(t, "echo 'config is broken' >&2\nexit 3\n")
	_, err := testprom.Start(t.Context(), testprom.Options{Binary: bin})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready (exit status 3)") ||
		!strings.Contains(err.Error(), "config is broken") {
		t.Fatalf("Start(a binary that exits) = %v, want the exit status and its log", err)
	}
}

// An older Prometheus lacks the hidden --scrape.discovery-reload-interval flag: Start retries
// without it.
func TestStartWithoutReloadIntervalFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped in -short mode")
	}
	promBin, err := testprom.Binary()
	if err != nil {
		t.Fatal(err)
	}
	bin := script(t, `for a in "$@"; do
  case "$a" in --scrape.discovery-reload-interval=*)
    echo "prometheus: error: unknown long flag '--scrape.discovery-reload-interval', try --help" >&2; exit 1;;
  esac
done
exec '`+promBin+`' "$@"
`)
	prom, err := testprom.Start(t.Context(), testprom.Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestTargetGroups(t *testing.T) {
	stable, canary := serveMetrics(t, 1), serveMetrics(t, 2)
	prom := testprom.StartT(t, testprom.Options{
		TargetGroups: []testprom.TargetGroup{
			{Targets: []string{stable}, Labels: map[string]string{"pod_template_hash": "aaa", "track": "stable"}},
			{Targets: []string{canary}, Labels: map[string]string{"pod_template_hash": "bbb"}},
		},
		ExtraLabels:    map[string]string{"namespace": "shop", "track": "any"},
		ScrapeInterval: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	for query, want := range map[string]float64{
		`testprom_value{namespace="shop", pod_template_hash="aaa", track="stable"}`: 1, // the group's label wins
		`testprom_value{namespace="shop", pod_template_hash="bbb", track="any"}`:    2,
	} {
		v, err := prom.WaitForSeries(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		if got := scalarOf(t, v); got != want {
			t.Errorf("%s = %v, want %v", query, got, want)
		}
	}

	// New labels for the same target: its series continue under them.
	if err := prom.SetTargetGroups(ctx, testprom.TargetGroup{Targets: []string{stable}, Labels: map[string]string{"pod_template_hash": "ccc"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := prom.WaitForSeries(ctx, `testprom_value{instance="`+stable+`", pod_template_hash="ccc"} == 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := prom.WaitForSeries(ctx, `absent(testprom_value{pod_template_hash="bbb"})`); err != nil {
		t.Fatal(err)
	}

	for _, g := range []testprom.TargetGroup{
		{Targets: []string{stable}, Labels: map[string]string{"pod-template-hash": "x"}},
		{Targets: []string{"192.0.2.1:9100"}},
	} {
		if err := prom.SetTargetGroups(ctx, g); err == nil {
			t.Errorf("SetTargetGroups(%v) succeeded", g)
		}
	}
}

// An interrupted server comes back on the same address with its data.
func TestInterruptAndRestart(t *testing.T) {
	srv := testprom.StartT(t, testprom.Options{})
	url := srv.URL()
	if err := srv.Interrupt(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(url + "/-/ready"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("Prometheus still answers after Interrupt")
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.URL() != url {
		t.Fatalf("restarted on %s, want %s", srv.URL(), url)
	}
	resp, err := http.Get(url + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}
