package demoapp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/demoapp"
)

// Call reports each answer and the count; a failed call is counted out, not fatal.
func TestCall(t *testing.T) {
	s, _ := start(t, demoapp.Options{Hostname: "greeter-abc", Version: "v1"})
	var out strings.Builder
	answered, err := demoapp.Call(t.Context(), "passthrough:///"+s.Addr(), 2, 5*time.Second, &out)
	if err != nil || answered != 2 {
		t.Fatalf("Call = %d, %v; want 2 answered", answered, err)
	}
	want := "call 1: answered by greeter-abc (version v1), seeing the caller as plain text (no client certificate)\n" +
		"call 2: answered by greeter-abc (version v1), seeing the caller as plain text (no client certificate)\n" +
		"2/2 answered\n"
	if out.String() != want {
		t.Errorf("Call wrote\n%s\nwant\n%s", out.String(), want)
	}

	if err := s.SetErrorPercent(100); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	answered, err = demoapp.Call(t.Context(), "passthrough:///"+s.Addr(), 1, 5*time.Second, &out)
	if err != nil || answered != 0 || !strings.HasSuffix(out.String(), "0/1 answered\n") || !strings.Contains(out.String(), "Unavailable") {
		t.Errorf("Call with every call failing = %d, %v, wrote %q; want 0 answered, the error and 0/1", answered, err, out.String())
	}
}
