package proc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/proc"
)

// A process that ends on its own says so, with the end of its output; one that is stopped does
// not count as ended early.
func TestExitedEarlyAndStop(t *testing.T) {
	p, err := proc.Start(proc.Options{Name: "quick", Bin: "/bin/sh", Args: []string{"-c", "echo said-something; exit 3"}, Preamble: "earlier\n"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.ExitedEarly() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.ExitedEarly(); err == nil || !strings.Contains(err.Error(), "quick exited (exit status 3)") {
		t.Errorf("ExitedEarly = %v", err)
	}
	if logs := p.Logs(); logs != "earlier\nsaid-something\n" {
		t.Errorf("logs %q", logs)
	}

	long, err := proc.Start(proc.Options{Name: "long", Bin: "/bin/sh", Args: []string{"-c", "sleep 60"}})
	if err != nil {
		t.Fatal(err)
	}
	long.Stop(5 * time.Second)
	if err := long.ExitedEarly(); err != nil {
		t.Errorf("a stopped process counts as ended early: %v", err)
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := proc.NewTailBuffer(5)
	_, _ = b.Write([]byte("abc"))
	_, _ = b.Write([]byte("defg"))
	if got := b.String(); got != "cdefg" {
		t.Errorf("got %q, want cdefg", got)
	}
}
