package podnet_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/podnet"
)

// helperEnv makes the test binary act as a small program that calls Enter (see helper), so the
// tests can watch Enter from outside.
const helperEnv = "PODNET_TEST_HELPER"

// enterErr is why this test binary could not enter; the tests that need the namespace skip.
var enterErr error

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	enterErr = podnet.EnterListening("127.0.0.1:0")
	if enterErr != nil {
		fmt.Fprintln(os.Stderr, "podnet tests run outside a namespace:", enterErr)
	}
	os.Exit(m.Run())
}

func needInside(t *testing.T) {
	t.Helper()
	if enterErr != nil {
		t.Skip(enterErr)
	}
	if !podnet.Inside() {
		t.Fatal("Enter returned nil but Inside is false")
	}
}

// Any pod IP and node IP can be bound and reached inside; the outside network cannot.
func TestPodIPsAreLocal(t *testing.T) {
	needInside(t)
	for _, addr := range []string{"192.0.2.77:0", "192.0.2.1:0", "192.0.2.254:0", "198.51.100.9:0", "127.0.0.5:0"} {
		t.Run(addr, func(t *testing.T) {
			lis, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = lis.Close() }()
			go func() {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
			c, err := net.DialTimeout("tcp", lis.Addr().String(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
				t.Fatalf("echo: %q, %v", got, err)
			}
		})
	}
}

// Anything else fails at once, rather than after a timeout; the node IP is an address of lo on the
// default route's interface, where kube-apiserver looks for the host's address.
func TestOutsideIsUnreachable(t *testing.T) {
	needInside(t)
	start := time.Now()
	_, err := net.DialTimeout("tcp", "203.0.113.1:80", 5*time.Second)
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("dialing outside: want no route to host, got %v after %s", err, time.Since(start))
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := lo.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range addrs {
		found = found || a.String() == podnet.NodeIP+"/32"
	}
	if !found {
		t.Errorf("lo's addresses %v lack %s/32", addrs, podnet.NodeIP)
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(routes), "lo\t00000000") {
		t.Errorf("no default route through lo in /proc/net/route:\n%s", routes)
	}
}

// The re-executed program gets the arguments, shares stdout, and its exit code becomes the
// program's; a nested Enter in the child is a no-op.
func TestEnterReexecutesAndExitsWithTheChildsCode(t *testing.T) {
	needInside(t)
	cmd := helperCmd(t, "exit", "-extra-arg")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("want exit code 7, got %v; output %q", err, out)
	}
	if want := "inside=true args=-extra-arg\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

// SIGTERM to the program reaches the child, which exits as it likes; killing the program kills the
// child.
func TestSignalsAndParentDeath(t *testing.T) {
	needInside(t)
	t.Run("SIGTERM is forwarded", func(t *testing.T) {
		cmd, lines := startHelper(t, "wait")
		<-lines // pid: the child is running and listening for signals
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var exit *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("want exit code 3 from the child's SIGTERM handler, got %v", err)
		}
	})
	t.Run("the child dies with the parent", func(t *testing.T) {
		cmd, lines := startHelper(t, "wait")
		pid, err := strconv.Atoi(<-lines)
		if err != nil || pid == cmd.Process.Pid {
			t.Fatalf("the child's pid: %v (parent %d)", err, cmd.Process.Pid)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("child %d outlived its parent", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Where user namespaces cannot be created, Enter says so and how to fix it, wraps ErrUnavailable,
// and the program goes on in the host's namespaces. The helper runs in a user namespace of its own
// whose user.max_user_namespaces is 0, which changes nothing for anyone else.
func TestEnterFailsClearlyWithoutUserNamespaces(t *testing.T) {
	needInside(t)
	cmd := helperCmd(t, "denied")
	cmd.Stderr = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
	for _, want := range []string{"returned in the same process", "ErrUnavailable=true", "user.max_user_namespaces is 0", "kernel.unprivileged_userns_clone=1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func helperCmd(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	// A fresh program: not inside (the marker stripped), in helper mode.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_PODNET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

func startHelper(t *testing.T, mode string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := helperCmd(t, mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 10)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	return cmd, lines
}

// alive reports whether pid exists and is not a zombie waiting for its new parent to reap it.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces, the state follows the last ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// helper is the program the tests above start.
func helper(mode string) int {
	switch mode {
	case "exit":
		if err := podnet.Enter(); err != nil {
			fmt.Println("enter:", err)
			return 99
		}
		if err := podnet.Enter(); err != nil { // already inside: nothing to do
			fmt.Println("second enter:", err)
			return 98
		}
		fmt.Printf("inside=%t args=%s\n", podnet.Inside(), strings.Join(os.Args[2:], " "))
		return 7
	case "wait":
		if err := podnet.Enter(); err != nil {
			fmt.Println("enter:", err)
			return 99
		}
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Println(os.Getpid())
		<-term
		return 3
	case "denied":
		if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
			fmt.Println("cannot forbid user namespaces:", err)
			return 1
		}
		err := podnet.Enter()
		fmt.Printf("returned in the same process, Inside=%t ErrUnavailable=%t: %v\n", podnet.Inside(), errors.Is(err, podnet.ErrUnavailable), err)
		return 0
	}
	return 100
}
