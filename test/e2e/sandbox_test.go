// Package e2e runs the sandbox the way a new user does: `make demo`'s program, and `make
// sandbox-up`, kubectl from outside, `make sandbox-down`. The binaries are built from this tree.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// build builds the sandbox and the demo app into a temporary bin directory.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the whole sandbox; skipped in -short mode")
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "./cmd/sluice-sandbox", "./cmd/demoapp")
	cmd.Dir = repo.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(bin, "sluice-sandbox")
}

// The demo tells its story and exits 0: a healthy canary promoted, a bad one rolled back, and
// every process gone afterwards.
func TestDemo(t *testing.T) {
	sandbox := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sandbox, "-state", t.TempDir(), "demo")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	skipWithoutNamespaces(t, out)
	if err != nil {
		t.Fatalf("the demo failed (%v):\n%s", err, out)
	}
	for _, want := range []string{
		"✓ v2 promoted",
		"✓ v3 rolled back (AnalysisFailed)",
		"✓ a healthy canary (v2) was promoted step by step",
		"✓ a bad canary (v3, 30 % errors) was rolled back by the analysis",
		"Progressing step 2/3 canary  30%",
		"answered calls from spiffe://cluster.local/ns/demo/sa/loadgen", // mutual TLS, as the ZeroTrust says
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("plain text (no client certificate)")) {
		t.Errorf("calls reached the servers without mutual TLS under a STRICT ZeroTrust:\n%s", out)
	}
	if bytes.Contains(out, []byte("\x1b[")) {
		t.Error("colour codes in the output of a non-terminal")
	}
}

// sandbox-up returns once the sandbox is ready; kubectl outside reaches it and sees the demo's
// resources; a user's own proxyless gRPC client run with exec calls the greeter over mutual TLS,
// also across a renewal of the greeter's identity; sandbox-down stops every process.
func TestSandboxUpAndDown(t *testing.T) {
	sandbox := build(t)
	state := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(sandbox, append([]string{"-state", state}, args...)...).CombinedOutput()
		skipWithoutNamespaces(t, out)
		if err != nil {
			t.Fatalf("sluice-sandbox %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("up")
	pidData, err := os.ReadFile(filepath.Join(state, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }) // if the test fails half way

	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", filepath.Join(state, "kubeconfig"),
		"get", "sluice", "-A", "--no-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl from outside the sandbox: %v\n%s", err, out)
	}
	for _, want := range []string{"rollout.mesh.sluice.dev/greeter", "Promoted", "trafficpolicy.mesh.sluice.dev/greeter", "zerotrust.mesh.sluice.dev/demo"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl get sluice -A lacks %q:\n%s", want, out)
		}
	}

	// The demo app's client, as a user's own program, with the sandbox's grpc-bootstrap.json.
	call := run("exec", "--", filepath.Join(filepath.Dir(sandbox), "demoapp"), "call", "-n", "3",
		"xds:///greeter.demo.svc.cluster.local:8080")
	t.Logf("exec -- demoapp call -n 3:\n%s", call)
	for _, want := range []string{
		"3/3 answered",
		"(version v1), seeing the caller as spiffe://cluster.local/ns/demo/sa/loadgen", // mutual TLS
	} {
		if !strings.Contains(call, want) {
			t.Errorf("exec -- demoapp call lacks %q:\n%s", want, call)
		}
	}

	renewGreeterIdentity(t, sandbox, state)

	// Without a client certificate a client gets no configuration: the operator serves xDS over
	// mutual TLS only, as in a real install.
	plain := filepath.Join(state, "plain-bootstrap.json")
	if err := os.WriteFile(plain, testmesh.Bootstrap("127.0.0.1:15010", "grpc~127.0.0.1~loadgen.demo~demo.svc.cluster.local"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(sandbox, "-state", state, "exec", "--", "env", "GRPC_XDS_BOOTSTRAP="+plain,
		filepath.Join(filepath.Dir(sandbox), "demoapp"), "call", "-timeout", "2s", "xds:///greeter.demo.svc.cluster.local:8080").CombinedOutput()
	t.Logf("exec -- demoapp call with a plain-text xDS channel: %v\n%s", err, out)
	if err == nil || !strings.Contains(string(out), "error received from xDS stream") {
		t.Errorf("a client with a plain-text xDS channel was not refused by the xDS server (%v):\n%s", err, out)
	}

	run("down")
	// Every process of the sandbox was in its session: none may be left.
	if left := sessionMembers(pid); len(left) > 0 {
		t.Errorf("processes left after sandbox-down: %v", left)
	}
	out, err = exec.Command(sandbox, "-state", state, "exec", "--", "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no sandbox runs") {
		t.Errorf("exec after sandbox-down: %v, %s; want an error saying no sandbox runs", err, out)
	}
}

// skipWithoutNamespaces skips the test on a machine where the sandbox cannot make its network
// namespace (unprivileged user namespaces disabled): the sandbox says so and how to enable them.
func skipWithoutNamespaces(t *testing.T, out []byte) {
	t.Helper()
	if bytes.Contains(out, []byte("user and network namespaces are not available")) {
		t.Skipf("the sandbox needs unprivileged user namespaces here:\n%s", out)
	}
}

// sessionMembers lists the processes whose session id is sid.
func sessionMembers(sid int) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		// state ppid pgrp session ...
		if len(fields) > 3 && fields[3] == strconv.Itoa(sid) && fields[0] != "Z" {
			out = append(out, strconv.Itoa(pid)+" "+s[:strings.LastIndexByte(s, ')')+1])
		}
	}
	return out
}
