package promquery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// These cover what needs no Prometheus: bad input, an unreachable or hanging address. The answers
// of a real Prometheus are in prometheus_test.go.

func TestQueryRejectsBadInput(t *testing.T) {
	for _, tt := range []struct{ address, query, want string }{
		{"http://127.0.0.1:9090", "  ", "empty query"},
		{"127.0.0.1:9090", "up", "must be an http or https URL"},
		{"ftp://127.0.0.1:9090", "up", "must be an http or https URL"},
		{"http://", "up", "must be an http or https URL"},
		{"http://a b/", "up", "(unparsable address)"},
	} {
		res, err := Query(t.Context(), tt.address, tt.query, time.Time{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Query(%q, %q) error = %v, want %q", tt.address, tt.query, err, tt.want)
		}
		if res.Kind != KindError {
			t.Errorf("Query(%q, %q) kind = %v, want Error", tt.address, tt.query, res.Kind)
		}
	}
}

// closedAddr returns a 127.0.0.1 port that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestQueryErrorHidesUserInfo(t *testing.T) {
	addr := closedAddr(t)
	for _, address := range []string{
		"http://alice:hunter2-secret@" + addr,
		"http://alice:hunter2-secret@" + addr + "/prom/?token=abc",
		"http://alice@" + addr,
	} {
		res, err := Query(t.Context(), address, "up", time.Time{})
		if err == nil {
			t.Fatalf("Query(%s) succeeded against a closed port", address)
		}
		msg := err.Error()
		for _, secret := range []string{"alice", "hunter2", "token"} {
			if strings.Contains(msg, secret) {
				t.Errorf("error for %s shows %q: %s", address, secret, msg)
			}
		}
		if !strings.Contains(msg, "querying Prometheus at http://"+addr) {
			t.Errorf("error for %s does not name the address: %s", address, msg)
		}
		if res.Kind != KindError {
			t.Errorf("kind = %v, want Error", res.Kind)
		}
	}
}

func TestQueryIsBoundedByContext(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Query(ctx, hang.URL, "up", time.Time{})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Query took %v with a 200ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || res.Kind != KindError {
		t.Errorf("Query(hanging server) = %+v, %v; want Error wrapping context.DeadlineExceeded", res, err)
	}
}

func TestEvalTimeout(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		4999 * time.Millisecond:               4 * time.Second,
		90*time.Second + 500*time.Millisecond: 90 * time.Second,
		999*time.Millisecond + 5:              999 * time.Millisecond,
		500 * time.Microsecond:                0,
	} {
		if got := evalTimeout(in); got != want {
			t.Errorf("evalTimeout(%v) = %v, want %v", in, got, want)
		}
	}
}
