package main

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/sluice-mesh/sluice/internal/demoapp"
)

// load is the demo's users: a proxyless gRPC client of the Service through the operator's xDS
// server, calling at a steady rate and keeping per-version figures for the live view.
type load struct {
	mu     sync.Mutex
	window map[string]*versionStats // since the last take
	total  map[string]*versionStats
	other  int // failures no version can be told for (no endpoint, timeouts)
	// callers counts answered calls by the identity the server saw them from ("" plain text).
	callers map[string]int
}

type versionStats struct {
	calls, failures int
	latencies       []time.Duration
}

// injected tells which version failed a call: the demo app says so in its error.
var injected = regexp.MustCompile(`\(version ([^)]*)\)`)

func startLoad(ctx context.Context, target string, perSecond int) (*load, error) {
	conn, err := demoapp.Dial("xds:///" + target)
	if err != nil {
		return nil, err
	}
	client := testpb.NewTestServiceClient(conn)
	l := &load{window: map[string]*versionStats{}, total: map[string]*versionStats{}, callers: map[string]int{}}
	go func() {
		defer func() { _ = conn.Close() }()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			go l.call(ctx, client)
		}
	}()
	return l, nil
}

func (l *load) call(ctx context.Context, c testpb.TestServiceClient) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true, FillUsername: true}, grpc.WaitForReady(true))
	took := time.Since(start)
	version := resp.GetServerId()
	if err != nil {
		if m := injected.FindStringSubmatch(status.Convert(err).Message()); m != nil {
			version = m[1]
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.callers[resp.GetUsername()]++
	}
	if version == "" {
		l.other++
		return
	}
	for _, m := range []map[string]*versionStats{l.window, l.total} {
		s := m[version]
		if s == nil {
			s = &versionStats{}
			m[version] = s
		}
		s.calls++
		if err != nil {
			s.failures++
		} else {
			s.latencies = append(s.latencies, took)
		}
	}
}

// take returns the figures since the last take, by version.
func (l *load) take() map[string]versionFigures {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := figuresOf(l.window)
	l.window = map[string]*versionStats{}
	return out
}

// seenAs returns how many answered calls the servers saw from each identity.
func (l *load) seenAs() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.callers)
}

// totals returns the figures since the start and the failures of no version.
func (l *load) totals() (map[string]versionFigures, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return figuresOf(l.total), l.other
}

type versionFigures struct {
	Calls, Failures int
	P99             time.Duration
}

func figuresOf(m map[string]*versionStats) map[string]versionFigures {
	out := map[string]versionFigures{}
	for v, s := range m {
		f := versionFigures{Calls: s.calls, Failures: s.failures}
		if n := len(s.latencies); n > 0 {
			lat := slices.Clone(s.latencies)
			slices.Sort(lat)
			f.P99 = lat[min(n-1, n*99/100)]
		}
		out[v] = f
	}
	return out
}
