package remoteexec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/remoteexec"
)

func listen(t *testing.T) (*remoteexec.Server, string) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "exec.sock")
	s, err := remoteexec.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(5 * time.Second) })
	return s, socket
}

// output is a file the command writes to, read back once it has ended.
func output(t *testing.T, name string) (*os.File, func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, func() string {
		data, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
}

func input(t *testing.T, text string) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// The command runs with the arguments, environment, directory and streams it was given, and its
// exit code comes back.
func TestRunsTheCommandAsAsked(t *testing.T) {
	_, socket := listen(t)
	stdout, readOut := output(t, "stdout")
	stderr, readErr := output(t, "stderr")
	dir := t.TempDir()
	code, err := remoteexec.Run(socket, remoteexec.Command{
		Args:   []string{"sh", "-c", `echo "$GREETING from $(pwd), $1"; read line; echo "read $line" >&2; exit 3`, "sh", "first arg"},
		Env:    []string{"GREETING=hello", "PATH=" + os.Getenv("PATH")},
		Dir:    dir,
		Stdin:  input(t, "a line\n"),
		Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if got, want := readOut(), "hello from "+dir+", first arg\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := readErr(), "read a line\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// waitFor waits until read() contains want.
func waitFor(t *testing.T, read func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(read(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not write %q; it wrote %q", want, read())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A signal the asking process receives reaches the command, as Ctrl-C reaches a program run in
// the foreground.
func TestForwardsSignals(t *testing.T) {
	_, socket := listen(t)
	stdout, readOut := output(t, "stdout")
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := remoteexec.Run(socket, remoteexec.Command{
			Args:   []string{"sh", "-c", `trap 'echo hung up; exit 7' HUP; echo ready; while :; do sleep 0.05; done`},
			Env:    []string{"PATH=" + os.Getenv("PATH")},
			Stdout: stdout,
		})
		done <- result{code, err}
	}()
	waitFor(t, readOut, "ready")
	// Run has caught SIGHUP since before the command started: it is forwarded, not fatal here.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.code != 7 {
			t.Errorf("Run = %d, %v; want 7 (the command's trap)", r.code, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not end after SIGHUP")
	}
	if got := readOut(); got != "ready\nhung up\n" {
		t.Errorf("stdout %q", got)
	}
}

// Closing the server ends the commands still running; their askers get the exit code.
func TestCloseEndsTheCommands(t *testing.T) {
	s, socket := listen(t)
	stdout, readOut := output(t, "stdout")
	done := make(chan int, 1)
	go func() {
		code, _ := remoteexec.Run(socket, remoteexec.Command{
			Args:   []string{"sh", "-c", "echo ready; exec sleep 60"},
			Env:    []string{"PATH=" + os.Getenv("PATH")},
			Stdout: stdout,
		})
		done <- code
	}()
	waitFor(t, readOut, "ready")
	start := time.Now()
	s.Close(5 * time.Second)
	select {
	case code := <-done:
		if code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code %d, want %d (SIGTERM)", code, 128+int(syscall.SIGTERM))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Close took %v: the command was not sent SIGTERM", took)
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after Close: %v", err)
	}
}

func TestNoServer(t *testing.T) {
	_, err := remoteexec.Run(filepath.Join(t.TempDir(), "none.sock"), remoteexec.Command{Args: []string{"true"}})
	if !errors.Is(err, remoteexec.ErrNoServer) {
		t.Errorf("Run without a server: %v, want ErrNoServer", err)
	}
}
