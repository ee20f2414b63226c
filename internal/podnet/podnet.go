// Package podnet runs a program (a test binary, usually) in its own network namespace where the
// test pod IPs are local addresses, so a server can listen on its pod IP 192.0.2.N as it would in
// a cluster, and clients dial that IP with no address mapping.
//
// Enter re-executes the program in new user and network namespaces, which needs no privileges on
// the host, only unprivileged user namespaces. Inside, the loopback interface is up and both test
// ranges are routed to it as local addresses:
//
//	local 192.0.2.0/24 dev lo table local     (PodCIDR, TEST-NET-1: pod IPs)
//	local 198.51.100.0/24 dev lo table local  (NodeCIDR, TEST-NET-2: node IPs)
//
// so any address in them can be bound and reached, and 127.0.0.0/8 works as usual. NodeIP is on lo
// and a default route goes through lo, so that programs looking for the host's address find one;
// any other destination fails at once with "no route to host".
//
// Everything the program starts (etcd, kube-apiserver, Prometheus, kwok, …) inherits the
// namespace, which is why they can talk to each other and to pod IPs. Nothing in it reaches the
// network outside, not even a module proxy: a tool that may have to be downloaded or built must be
// resolved BEFORE Enter, and its path handed on in the environment (KUBEBUILDER_ASSETS,
// PROMETHEUS_BINARY, KWOK_BINARY; see EnterAfter). The file system, users and processes are the
// host's, so caches and build outputs are shared as usual.
//
// Where user namespaces are not available, Enter returns an error wrapping ErrUnavailable that says
// how to enable them, and the program has gone past Enter in no other process: the caller can fall
// back (tests skip).
package podnet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

const (
	// PodCIDR holds the test pod IPs (TEST-NET-1); every address in it is local inside.
	PodCIDR = "192.0.2.0/24"
	// NodeCIDR holds the test node IPs (TEST-NET-2); every address in it is local inside.
	NodeCIDR = "198.51.100.0/24"
	// NodeIP is also an address of lo inside, on which the default route lies, for programs that
	// look for the host's address (kube-apiserver advertises it).
	NodeIP = "198.51.100.1"

	// envMarker tells a process where it stands: unset outside; "fd:N" in the re-executed
	// program until it has set up its network and reported on fd N; "inside" afterwards, and in
	// everything it starts.
	envMarker   = "SLUICE_PODNET"
	markerReady = "inside"
	markerFD    = "fd:"
	// childFD is where the re-executed program finds the pipe to report its setup on (ExtraFiles[0]).
	childFD = 3

	reportOK = "ok"

	// envListeners lists the file descriptors of the host listeners in the re-executed program.
	envListeners = "SLUICE_PODNET_LISTENERS"
)

// ErrUnavailable is wrapped by Enter's error when the namespaces cannot be created or set up here.
var ErrUnavailable = errors.New("podnet: user and network namespaces are not available")

func init() {
	// The report pipe is not close-on-exec in the re-executed program (it came as an extra file);
	// without this, processes started before Enter would keep it open and the parent would wait
	// for them. The same goes for the host listeners.
	if fd, ok := reportFD(); ok {
		syscall.CloseOnExec(fd)
	}
	for _, fd := range hostListenerFDs() {
		syscall.CloseOnExec(fd)
	}
}

// Inside reports whether this process runs in a namespace made by Enter, with its network set up.
func Inside() bool { return os.Getenv(envMarker) == markerReady }

// Enter makes the rest of the program run where pod IPs are local.
//
// Outside, it starts this same executable (/proc/self/exe, same arguments, environment and working
// directory, stdin/stdout/stderr shared) in new user and network namespaces, mapping this user to
// root there. It forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, the child is killed if this
// process dies, and once the child has set up its network this process waits for it and exits
// with its exit code (128+N for a child killed by signal N): on success Enter never returns here.
// If the namespaces cannot be made or set up, it returns an error wrapping ErrUnavailable and the
// program goes on as before in the host's namespaces.
//
// In the re-executed program, Enter brings lo up, makes PodCIDR and NodeCIDR local (over netlink;
// no ip binary needed), and returns nil. When the process is already inside, it returns nil.
func Enter() error { return enter(nil) }

// EnterListening is Enter, with TCP listeners opened on the host before entering: addrs are
// host:port addresses of the host's network (port 0 for a free one). Inside, HostListeners returns
// them, in the same order: connections from the host's network arrive on them, although
// everything else inside sees only the namespace's network. A program that runs servers inside
// proxies these to them, so that the host's kubectl or clients can reach them.
func EnterListening(addrs ...string) error { return enter(addrs) }

func enter(hostAddrs []string) error {
	if Inside() {
		return nil
	}
	if fd, ok := reportFD(); ok {
		enterChild(fd) // returns only on success
		return nil
	}
	code, err := runInside(hostAddrs)
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil // not reached
}

// EnterAfter runs prepare, then Enter. prepare runs only in the outer process, where the network
// is reachable: it resolves what the program will need inside (tools that may be downloaded or
// built) and passes its results on in the environment with os.Setenv, which the re-executed
// program inherits. Inside, prepare does not run again. An error from prepare is returned as is
// (it does not wrap ErrUnavailable).
func EnterAfter(prepare func() error) error { return EnterListeningAfter(prepare) }

// EnterListeningAfter is EnterAfter with the host listeners of EnterListening.
func EnterListeningAfter(prepare func() error, hostAddrs ...string) error {
	if os.Getenv(envMarker) == "" {
		if err := prepare(); err != nil {
			return err
		}
	}
	return enter(hostAddrs)
}

func reportFD() (int, bool) {
	v, ok := strings.CutPrefix(os.Getenv(envMarker), markerFD)
	if !ok {
		return 0, false
	}
	fd, err := strconv.Atoi(v)
	return fd, err == nil
}

// enterChild sets up the network of the namespace and reports to the parent. On failure it exits:
// the parent returns the error and runs the program itself.
func enterChild(fd int) {
	report := os.NewFile(uintptr(fd), "podnet-report")
	err := setUpNetwork()
	msg := reportOK
	if err != nil {
		msg = err.Error()
	}
	_, werr := io.WriteString(report, msg)
	_ = report.Close()
	if err != nil || werr != nil {
		os.Exit(125)
	}
	_ = os.Setenv(envMarker, markerReady)
}

// runInside runs this program again in new namespaces and returns its exit code, or an error if
// it could not enter them.
func runInside(hostAddrs []string) (int, error) {
	// A socket stays in the namespace it was made in, whichever process holds it: listeners made
	// here accept connections from the host's network inside the child.
	listeners, err := listenFiles(hostAddrs)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, f := range listeners {
			_ = f.Close() // the child has its own copies
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("podnet: %w", err)
	}
	defer func() { _ = r.Close() }()

	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), envMarker+"="+markerFD+strconv.Itoa(childFD))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = append([]*os.File{w}, listeners...)
	if len(listeners) > 0 {
		fds := make([]string, len(listeners))
		for i := range listeners {
			fds[i] = strconv.Itoa(childFD + 1 + i)
		}
		cmd.Env = append(cmd.Env, envListeners+"="+strings.Join(fds, ","))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		// The child must not outlive this process (kill -9 of go test, a CI runner's cancel).
		Pdeathsig: syscall.SIGKILL,
	}

	// Pdeathsig fires when the thread that started the child exits, not the process: keep this
	// goroutine on its thread while the child runs (on success, until Enter's os.Exit).
	runtime.LockOSThread()
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		signal.Stop(signals)
		runtime.UnlockOSThread()
		return 0, unavailable(fmt.Errorf("starting %s in new namespaces: %w", os.Args[0], err))
	}
	go func() {
		for s := range signals {
			_ = cmd.Process.Signal(s)
		}
	}()

	// The child writes "ok" or why it failed, then closes. Nothing at all means it ended (or
	// crashed) before calling Enter, having run as the program: its exit code is the answer.
	msg, _ := io.ReadAll(r)
	if len(msg) > 0 && string(msg) != reportOK {
		_ = cmd.Wait()
		signal.Stop(signals)
		close(signals)
		runtime.UnlockOSThread()
		return 0, unavailable(fmt.Errorf("setting up the network namespace: %s", msg))
	}
	err = cmd.Wait()
	return exitCode(cmd.ProcessState, err), nil
}

func exitCode(state *os.ProcessState, err error) int {
	if state == nil {
		fmt.Fprintln(os.Stderr, "podnet:", err)
		return 1
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w%s. %s", ErrUnavailable, err, diagnose(), howToEnable)
}

const howToEnable = "Unprivileged user namespaces must be enabled: " +
	"sysctl kernel.unprivileged_userns_clone=1 (Debian, older Ubuntu), " +
	"sysctl user.max_user_namespaces=15000 (if it is 0), " +
	"sysctl kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 23.10 and later); " +
	"in a container, allow clone(CLONE_NEWUSER) in its seccomp profile (e.g. docker run --security-opt seccomp=unconfined)"

// diagnose names the settings known to forbid user namespaces that are in force here, to say
// which of the fixes applies. It only explains a failure: the clone itself is the test.
func diagnose() string {
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	var found []string
	if read("/proc/sys/user/max_user_namespaces") == "0" {
		found = append(found, "user.max_user_namespaces is 0")
	}
	if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" && os.Geteuid() != 0 {
		found = append(found, "kernel.unprivileged_userns_clone is 0")
	}
	if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" && os.Geteuid() != 0 {
		found = append(found, "kernel.apparmor_restrict_unprivileged_userns is 1")
	}
	if len(found) == 0 {
		return ""
	}
	return " (" + strings.Join(found, ", ") + ")"
}
