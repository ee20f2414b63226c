package demoapp_test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/sluice-mesh/sluice/internal/demoapp"
)

func start(t *testing.T, opts demoapp.Options) (*demoapp.Server, testpb.TestServiceClient) {
	t.Helper()
	s, err := demoapp.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return s, testpb.NewTestServiceClient(cc)
}

func TestAnswersWithHostnameAndVersion(t *testing.T) {
	_, c := start(t, demoapp.Options{Hostname: "checkout-7d9f8c-abcde", Version: "v2"})
	resp, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetHostname() != "checkout-7d9f8c-abcde" || resp.GetServerId() != "v2" || len(resp.GetPayload().GetBody()) != 10 {
		t.Errorf("UnaryCall = %v, want hostname checkout-7d9f8c-abcde, server id v2 and a 10-byte payload", resp)
	}
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	_, err = c.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such order"}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("UnaryCall(response_status NOT_FOUND) error = %v, want NotFound", err)
	}
}

// failures makes n calls (alternating UnaryCall and EmptyCall, which share the schedule) and
// returns the indexes of those that failed with Unavailable.
func failures(t *testing.T, c testpb.TestServiceClient, n int) []int {
	t.Helper()
	var failed []int
	for i := range n {
		var err error
		if i%2 == 0 {
			_, err = c.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		} else {
			_, err = c.EmptyCall(t.Context(), &testpb.Empty{})
		}
		switch status.Code(err) {
		case codes.OK:
		case codes.Unavailable:
			failed = append(failed, i)
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	return failed
}

func TestErrorPercentIsExactAndChangesAtRunTime(t *testing.T) {
	s, c := start(t, demoapp.Options{ErrorPercent: 20})
	got := failures(t, c, 100)
	if len(got) != 20 {
		t.Fatalf("20%%: %d of 100 calls failed, want exactly 20", len(got))
	}
	for i, n := range got {
		if n != 5*i+4 {
			t.Fatalf("20%%: failed calls %v, want every 5th", got)
		}
	}
	for _, tt := range []struct{ percent, want int }{{0, 0}, {100, 50}, {33, 33}, {1, 1}} {
		if err := s.SetErrorPercent(tt.percent); err != nil {
			t.Fatal(err)
		}
		// 100 calls from a multiple of 100 give exactly p failures; 50 at 100% are all of them.
		n := 100
		if tt.percent == 100 {
			n = 50
		}
		if got := failures(t, c, n); len(got) != tt.want {
			t.Errorf("%d%%: %d of %d calls failed, want %d", tt.percent, len(got), n, tt.want)
		}
	}
	for _, p := range []int{-1, 101} {
		if err := s.SetErrorPercent(p); err == nil {
			t.Errorf("SetErrorPercent(%d) succeeded", p)
		}
	}
	if _, err := demoapp.Start(t.Context(), demoapp.Options{ErrorPercent: 150}); err == nil {
		t.Error("Start(ErrorPercent 150) succeeded")
	}
}

func TestLatency(t *testing.T) {
	s, c := start(t, demoapp.Options{})
	if err := s.SetLatency(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 50*time.Millisecond {
		t.Errorf("call took %v with 50ms latency", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.EmptyCall(ctx, &testpb.Empty{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call with a 10ms deadline = %v, want DeadlineExceeded", err)
	}
}

// scrape reads a server's /metrics.
func scrape(t *testing.T, s *demoapp.Server) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.MetricsAddr()+"/metrics", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// The series the built-in analysis queries read (docs/data-plane-metrics.md); each server keeps
// its own, however many run in the process.
func TestMetricsSeries(t *testing.T) {
	s, c := start(t, demoapp.Options{ErrorPercent: 50})
	quiet, _ := start(t, demoapp.Options{})
	failures(t, c, 4) // at 50% every 2nd call fails: both EmptyCalls
	families := scrape(t, s)

	duration := families["grpc_server_call_duration_seconds"]
	if duration.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("grpc_server_call_duration_seconds: %v, want a histogram; families: %v", duration, families)
	}
	byKey := map[string]uint64{}
	for _, m := range duration.GetMetric() {
		l := labels(m)
		if l["otel_scope_name"] != "grpc-go" {
			t.Errorf("series %v: want otel_scope_name grpc-go", l)
		}
		byKey[l["grpc_method"]+" "+l["grpc_status"]] += m.GetHistogram().GetSampleCount()
	}
	want := map[string]uint64{
		"grpc.testing.TestService/UnaryCall OK":          2,
		"grpc.testing.TestService/EmptyCall UNAVAILABLE": 2,
	}
	if !maps.Equal(byKey, want) {
		t.Errorf("calls by method and status = %v, want %v", byKey, want)
	}
	started := families["grpc_server_call_started_total"]
	if started.GetType() != dto.MetricType_COUNTER || len(started.GetMetric()) != 2 {
		t.Errorf("grpc_server_call_started_total = %v, want a counter per method", started)
	}
	info := families["target_info"]
	if len(info.GetMetric()) != 1 || labels(info.GetMetric()[0])["service_name"] != "demoapp" {
		t.Errorf("target_info = %v, want service_name demoapp", info)
	}

	if got := scrape(t, quiet)["grpc_server_call_duration_seconds"]; len(got.GetMetric()) != 0 {
		t.Errorf("a server without calls has duration series %v: servers share metrics", got)
	}
}
