package xds_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The resilience features of a TrafficPolicy, end to end: gRPC's own xDS client against the
// operator, real gRPC backends that fail or stall on purpose.

// behaviour decides how a backend answers its n-th call (from 1): nil serves it.
type behaviour func(ctx context.Context, n int64) error

// behavingBackend serves TestService like backend, but asks its behaviour first.
type behavingBackend struct {
	testgrpc.UnimplementedTestServiceServer
	b      *backend
	behave behaviour
}

func (s *behavingBackend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	n := s.b.calls.Add(1)
	if s.behave != nil {
		if err := s.behave(ctx, n); err != nil {
			return nil, err
		}
	}
	return &testgrpc.SimpleResponse{Hostname: s.b.pod, ServerId: s.b.version}, nil
}

// startBehaving is startBackends with a behaviour per backend (nil: always serve).
func startBehaving(t *testing.T, first int, behaviours ...behaviour) []*backend {
	t.Helper()
	port := freePortOn(t, first, len(behaviours))
	var out []*backend
	for i, behave := range behaviours {
		b := &backend{pod: fmt.Sprintf("pod-%d", first+i), version: "v1", port: port,
			ip: fmt.Sprintf("192.0.2.%d", first+i), listenIP: fmt.Sprintf("127.0.0.%d", first+i)}
		lis, err := net.Listen("tcp", net.JoinHostPort(b.listenIP, strconv.Itoa(int(port))))
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, &behavingBackend{b: b, behave: behave})
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		out = append(out, b)
	}
	return out
}

func policyFor(ns, service string, spec meshv1alpha1.TrafficPolicySpec) *meshv1alpha1.TrafficPolicy {
	spec.TargetRef = meshv1alpha1.ServiceRef{Kind: "Service", Name: service}
	return &meshv1alpha1.TrafficPolicy{ObjectMeta: metaOf(ns, service), Spec: spec}
}

// outcomes makes n calls (each with its own 10 s deadline unless ctx says less) and counts them by
// status code; hosts counts the successful ones by the pod that answered.
func outcomes(t *testing.T, c testgrpc.TestServiceClient, n int, timeout time.Duration, md ...string) (codesSeen map[codes.Code]int, hosts map[string]int) {
	t.Helper()
	codesSeen, hosts = map[codes.Code]int{}, map[string]int{}
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	firstErr := map[codes.Code]error{}
	for i := 0; i < n; i++ {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := c.UnaryCall(callCtx, &testgrpc.SimpleRequest{FillServerId: true})
		cancel()
		code := status.Code(err)
		codesSeen[code]++
		if err == nil {
			hosts[resp.GetHostname()]++
		} else if firstErr[code] == nil {
			firstErr[code] = err
		}
	}
	for code, err := range firstErr {
		t.Logf("%d of %d calls failed with %s, the first: %v", codesSeen[code], n, code, err)
	}
	return codesSeen, hosts
}

var errUnavailable = status.Error(codes.Unavailable, "failing on purpose")

// A backend that fails every first attempt (UNAVAILABLE) fails half the calls without a policy,
// and none once the policy retries: gRPC ports retry UNAVAILABLE by default.
func TestRetryRecoversFirstAttempt(t *testing.T) {
	ns := namespace(t, "retry")
	backends := startBehaving(t, 111, func(_ context.Context, n int64) error {
		if n%2 == 1 {
			return errUnavailable
		}
		return nil
	})
	serviceFor(t, ns, "ledger", 9090, backends)
	c := xdsClient(t, "ledger.retry.svc.cluster.local:9090")
	eventually(t, 20*time.Second, func() error {
		// OK too: before the client has the endpoints every call fails, none on the backend.
		if got, _ := outcomes(t, c, 10, 5*time.Second); got[codes.Unavailable] == 0 || got[codes.OK] == 0 {
			return fmt.Errorf("without a policy calls should fail half the time: %v", got)
		}
		return nil
	})

	must(t, env.Client.Create(context.Background(), policyFor(ns, "ledger", meshv1alpha1.TrafficPolicySpec{
		Retries: &meshv1alpha1.RetryPolicy{Attempts: 2},
	})))
	eventually(t, 20*time.Second, func() error {
		if got, _ := outcomes(t, c, 20, 5*time.Second); got[codes.OK] != 20 {
			return fmt.Errorf("retries are not in place yet: %v", got)
		}
		return nil
	})
	before := backends[0].calls.Load()
	got, _ := outcomes(t, c, 200, 5*time.Second)
	attempts := backends[0].calls.Load() - before
	t.Logf("200 calls: %v, %d attempts reached the backend", got, attempts)
	if got[codes.OK] != 200 {
		t.Errorf("every call should succeed through a retry: %v", got)
	}
	if attempts < 390 || attempts > 410 {
		t.Errorf("%d attempts for 200 calls; want about 400 (each first attempt fails)", attempts)
	}
}

// A backend slower than the policy's timeout fails calls with DEADLINE_EXCEEDED at the timeout,
// although the caller's own deadline is much longer.
func TestSlowBackendHitsTimeout(t *testing.T) {
	ns := namespace(t, "timeout")
	backends := startBehaving(t, 115, func(ctx context.Context, _ int64) error {
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		return nil
	})
	serviceFor(t, ns, "ledger", 9090, backends)
	must(t, env.Client.Create(context.Background(), policyFor(ns, "ledger", meshv1alpha1.TrafficPolicySpec{
		Timeout: &metav1.Duration{Duration: 300 * time.Millisecond},
	})))
	c := xdsClient(t, "ledger.timeout.svc.cluster.local:9090")
	eventually(t, 30*time.Second, func() error {
		start := time.Now()
		got, _ := outcomes(t, c, 1, 10*time.Second)
		if took := time.Since(start); got[codes.DeadlineExceeded] != 1 || took > 2*time.Second {
			return fmt.Errorf("call ended with %v after %s; want DEADLINE_EXCEEDED after about 300ms", got, took)
		}
		return nil
	})
	for i := 0; i < 5; i++ {
		start := time.Now()
		got, _ := outcomes(t, c, 1, 10*time.Second)
		took := time.Since(start)
		if got[codes.DeadlineExceeded] != 1 || took < 250*time.Millisecond || took > 1500*time.Millisecond {
			t.Errorf("call %d: %v after %s; want DEADLINE_EXCEEDED after about 300ms", i, got, took)
		}
	}
}

// An abort fault of 25 % with a gRPC status fails that share of calls, measured within ±4 points
// over 2000 calls; the backend never sees the aborted ones.
func TestAbortFaultShare(t *testing.T) {
	ns := namespace(t, "fault")
	backends := startBehaving(t, 117, nil, nil)
	serviceFor(t, ns, "ledger", 9090, backends)
	tp := policyFor(ns, "ledger", meshv1alpha1.TrafficPolicySpec{
		FaultInjection: &meshv1alpha1.FaultInjection{Abort: &meshv1alpha1.FaultAbort{
			Percent: 25, GRPCStatus: ptr.To(meshv1alpha1.GRPCStatus("RESOURCE_EXHAUSTED")),
		}},
		Mirror: &meshv1alpha1.Mirror{Service: "ledger", Percent: ptr.To[int32](1)},
	})
	must(t, env.Client.Create(context.Background(), tp))
	c := xdsClient(t, "ledger.fault.svc.cluster.local:9090")
	eventually(t, 20*time.Second, func() error {
		// OK too: the client aborts before it picks, so the fault shows before the endpoints do.
		if got, _ := outcomes(t, c, 100, 5*time.Second); got[codes.ResourceExhausted] == 0 || got[codes.OK] == 0 {
			return fmt.Errorf("the fault or the endpoints are not in place yet: %v", got)
		}
		return nil
	})
	before := backends[0].calls.Load() + backends[1].calls.Load()
	const n = 2000
	got, _ := outcomes(t, c, n, 5*time.Second)
	served := backends[0].calls.Load() + backends[1].calls.Load() - before
	aborted := 100 * float64(got[codes.ResourceExhausted]) / n
	t.Logf("%d calls: %v; aborted %.1f%%; the backends served %d", n, got, aborted, served)
	if err := within(aborted, 25, 4); err != nil {
		t.Error(err)
	}
	if got[codes.OK]+got[codes.ResourceExhausted] != n {
		t.Errorf("only OK and the fault's status expected: %v", got)
	}
	if int(served) != got[codes.OK] {
		t.Errorf("the backends served %d calls, want the %d that succeeded (aborted calls never leave the client)", served, got[codes.OK])
	}

	// The policy applies; its status says what gRPC clients cannot honour (the mirror).
	eventually(t, 20*time.Second, func() error {
		must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(tp), tp))
		cond := meta.FindStatusCondition(tp.Status.Conditions, meshv1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != "UnsupportedByGRPC" {
			return fmt.Errorf("Accepted should be True, reason UnsupportedByGRPC: %+v", cond)
		}
		t.Logf("Accepted=True %s: %s", cond.Reason, cond.Message)
		return nil
	})
}

// Ring hash on a header keeps each key on one backend, and spreads different keys.
func TestRingHashKeepsKeyOnOneBackend(t *testing.T) {
	ns := namespace(t, "ringhash")
	backends := startBehaving(t, 91, nil, nil, nil, nil)
	serviceFor(t, ns, "ledger", 9090, backends)
	must(t, env.Client.Create(context.Background(), policyFor(ns, "ledger", meshv1alpha1.TrafficPolicySpec{
		LoadBalancer: &meshv1alpha1.LoadBalancer{Policy: "RingHash", HashHeader: "x-account"},
	})))
	c := xdsClient(t, "ledger.ringhash.svc.cluster.local:9090")
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("account-%d", i)
	}
	owners := map[string]string{}
	eventually(t, 30*time.Second, func() error {
		for _, k := range keys {
			_, hosts := outcomes(t, c, 10, 5*time.Second, "x-account", k)
			if len(hosts) != 1 {
				return fmt.Errorf("key %s reached %v", k, hosts)
			}
			for h := range hosts {
				owners[k] = h
			}
		}
		return nil
	})
	for _, k := range keys {
		_, hosts := outcomes(t, c, 50, 5*time.Second, "x-account", k)
		if len(hosts) != 1 || hosts[owners[k]] != 50 {
			t.Errorf("key %s: 50 calls reached %v; want all on %s", k, hosts, owners[k])
		}
	}
	distinct := map[string]bool{}
	for _, h := range owners {
		distinct[h] = true
	}
	t.Logf("16 keys on %d of 4 backends: %v", len(distinct), owners)
	if len(distinct) < 2 {
		t.Errorf("16 keys all hashed to one backend: %v", owners)
	}
}

// Outlier detection (failure percentage, which gRPC clients implement) ejects the backend that
// fails every call: afterwards no call reaches it and every call succeeds.
func TestOutlierDetectionEjectsFailingBackend(t *testing.T) {
	ns := namespace(t, "outlier")
	failing := func(context.Context, int64) error { return errUnavailable }
	backends := startBehaving(t, 101, nil, nil, failing)
	serviceFor(t, ns, "ledger", 9090, backends)
	c := xdsClient(t, "ledger."+ns+".svc.cluster.local:9090")
	bad := backends[2]
	// Count what reached the backends, not failed calls: until the client has the endpoints, every
	// call fails (no targets) and none reaches any backend, which would pass both checks below.
	eventually(t, 20*time.Second, func() error {
		before := bad.calls.Load()
		if got, _ := outcomes(t, c, 30, 5*time.Second); got[codes.OK] == 0 || bad.calls.Load() == before {
			return fmt.Errorf("without a policy the failing backend should get calls, the others answer: %v", got)
		}
		return nil
	})

	must(t, env.Client.Create(context.Background(), policyFor(ns, "ledger", meshv1alpha1.TrafficPolicySpec{
		OutlierDetection: &meshv1alpha1.OutlierDetection{
			FailurePercentage:  &meshv1alpha1.FailurePercentageEjection{Threshold: 50, MinimumHosts: ptr.To[int32](3), RequestVolume: ptr.To[int32](10)},
			Interval:           &metav1.Duration{Duration: time.Second},
			BaseEjectionTime:   &metav1.Duration{Duration: time.Minute},
			MaxEjectionPercent: 50,
		},
	})))
	start := time.Now()
	eventually(t, 30*time.Second, func() error {
		before := bad.calls.Load()
		got, _ := outcomes(t, c, 60, 5*time.Second)
		if n := bad.calls.Load() - before; n > 0 || got[codes.OK] != 60 {
			return fmt.Errorf("the failing backend still got %d of 60 calls: %v", n, got)
		}
		return nil
	})
	t.Logf("the failing backend was ejected within %s", time.Since(start).Round(100*time.Millisecond))
	before := bad.calls.Load()
	got, _ := outcomes(t, c, 300, 5*time.Second)
	if n := bad.calls.Load() - before; n > 0 || got[codes.OK] != 300 {
		t.Errorf("after ejection: the failing backend got %d calls; outcomes %v", n, got)
	}
}
