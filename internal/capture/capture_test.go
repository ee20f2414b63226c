package capture_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/sluice-mesh/sluice/internal/capture"
)

// The test's two network namespaces, joined by a veth pair: "pod" is captured, "peer" is the
// rest of the cluster (a service on 10.213.0.1 and 10.213.0.3, a client).
const (
	podIP        = "10.213.0.2"
	peerIP       = "10.213.0.1"
	peerIPSkip   = "10.213.0.3" // excluded by CIDR
	appPort      = 8080
	servicePort  = 9090
	skippedPort  = 9091 // excluded outbound port
	statsPort    = 15090
	proxyUID     = 1337
	someOtherUID = 1000
)

// TestCaptureRedirectsInRealNamespace programs the rules into a network namespace made for the
// test and shows where real TCP connections land: inbound ones at the sidecar's inbound port,
// outbound ones at its outbound port, and the sidecar's own (UID 1337), loopback and excluded
// ones where they were sent. Each listener answers with its name and the connection's original
// destination (SO_ORIGINAL_DST, which Envoy reads the same way).
func TestCaptureRedirectsInRealNamespace(t *testing.T) {
	requireNetAdmin(t)
	pod, peer := newNetns(t, "pod"), newNetns(t, "peer")
	link := "sc" + pod.name[len(pod.name)-6:]
	run(t, "ip", "link", "add", link+"a", "netns", pod.name, "type", "veth", "peer", "name", link+"b", "netns", peer.name)
	run(t, "ip", "-n", pod.name, "addr", "add", podIP+"/24", "dev", link+"a")
	run(t, "ip", "-n", peer.name, "addr", "add", peerIP+"/24", "dev", link+"b")
	run(t, "ip", "-n", peer.name, "addr", "add", peerIPSkip+"/24", "dev", link+"b")
	for _, ns := range []*netns{pod, peer} {
		run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", pod.name, "link", "set", link+"a", "up")
	run(t, "ip", "-n", peer.name, "link", "set", link+"b", "up")

	cfg := capture.Config{
		InboundPort:          capture.DefaultInboundPort,
		OutboundPort:         capture.DefaultOutboundPort,
		ProxyUID:             proxyUID,
		ExcludeInboundPorts:  []uint16{statsPort},
		ExcludeOutboundPorts: []uint16{skippedPort},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix(peerIPSkip + "/32")},
	}
	// Twice: a restarted init container must leave one set of rules.
	for range 2 {
		if err := capture.Apply(cfg, nftables.WithNetNSFd(int(pod.fd.Fd()))); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(pod.fd.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].Name != capture.TableName {
		t.Fatalf("tables after applying twice: %v, want only %q", tableNames(tables), capture.TableName)
	}

	serve(t, pod, "sidecar-inbound", fmt.Sprintf("0.0.0.0:%d", capture.DefaultInboundPort))
	serve(t, pod, "sidecar-outbound", fmt.Sprintf("0.0.0.0:%d", capture.DefaultOutboundPort))
	serve(t, pod, "app", fmt.Sprintf("0.0.0.0:%d", appPort))
	serve(t, pod, "sidecar-stats", fmt.Sprintf("0.0.0.0:%d", statsPort))
	serve(t, peer, "service", fmt.Sprintf("0.0.0.0:%d", servicePort))
	serve(t, peer, "service-skipped-port", fmt.Sprintf("0.0.0.0:%d", skippedPort))

	for _, tc := range []struct {
		name      string
		from      *netns
		uid       int
		to        string
		want      string // listener name and original destination
		rationale string
	}{
		{"inbound to the app port", peer, 0, hostPort(podIP, appPort),
			"sidecar-inbound " + hostPort(podIP, appPort), "inbound TCP goes to the sidecar's inbound port"},
		{"inbound to an excluded port", peer, 0, hostPort(podIP, statsPort),
			"sidecar-stats " + hostPort(podIP, statsPort), "an excluded inbound port is reached directly"},
		{"outbound from the app", pod, 0, hostPort(peerIP, servicePort),
			"sidecar-outbound " + hostPort(peerIP, servicePort), "outbound TCP goes to the sidecar's outbound port"},
		{"outbound from another UID", pod, someOtherUID, hostPort(peerIP, servicePort),
			"sidecar-outbound " + hostPort(peerIP, servicePort), "only the proxy's UID is left alone"},
		{"outbound from the proxy UID", pod, proxyUID, hostPort(peerIP, servicePort),
			"service " + hostPort(peerIP, servicePort), "the sidecar's own connections are not redirected"},
		{"outbound to an excluded port", pod, 0, hostPort(peerIP, skippedPort),
			"service-skipped-port " + hostPort(peerIP, skippedPort), "an excluded outbound port is reached directly"},
		{"outbound to an excluded CIDR", pod, 0, hostPort(peerIPSkip, servicePort),
			"service " + hostPort(peerIPSkip, servicePort), "an excluded CIDR is reached directly"},
		{"loopback", pod, 0, hostPort("127.0.0.1", appPort),
			"app " + hostPort("127.0.0.1", appPort), "loopback is never captured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dial(tc.from, tc.uid, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("connection from %s (uid %d) to %s was answered by %q, want %q: %s", tc.from.role, tc.uid, tc.to, got, tc.want, tc.rationale)
			}
		})
	}

	if err := capture.Remove(nftables.WithNetNSFd(int(pod.fd.Fd()))); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(pod, 0, hostPort(peerIP, servicePort)); err != nil || got != "service "+hostPort(peerIP, servicePort) {
		t.Errorf("after Remove, outbound was answered by %q (%v), want the service itself", got, err)
	}
}

// requireNetAdmin skips the test where it cannot make network namespaces and program nftables.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Skipf("skipped: cannot read this process's capabilities (%v); the capture test needs CAP_NET_ADMIN (run it as root, as CI does)", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		t.Skip("skipped: this process lacks CAP_NET_ADMIN, needed to create network namespaces and program nftables; run as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: the ip command (iproute2) is not installed; the test uses it to create the namespaces and veth pair")
	}
}

type netns struct {
	role, name string
	fd         *os.File
}

// newNetns makes a named network namespace (ip netns add), removed when the test ends.
func newNetns(t *testing.T, role string) *netns {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := &netns{role: role, name: "sluice-cap-" + hex.EncodeToString(b)}
	run(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	f, err := os.Open("/run/netns/" + ns.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	ns.fd = f
	return ns
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on a thread that has entered ns, with fsuid uid (the UID new sockets are
// owned by, which nftables' meta skuid matches). The thread is thrown away afterwards (the
// goroutine ends locked), so no other goroutine ever runs in ns or with uid.
func inNetns(ns *netns, uid int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.fd.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("entering %s: %w", ns.name, err)
			return
		}
		if uid != 0 {
			_ = unix.Setfsuid(uid)
		}
		done <- f()
	}()
	return <-done
}

// serve answers every connection on addr in ns with "<name> <original destination>".
func serve(t *testing.T, ns *netns, name, addr string) {
	t.Helper()
	var l net.Listener
	if err := inNetns(ns, 0, func() (err error) { l, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			orig, err := originalDst(c.(*net.TCPConn))
			if err != nil {
				orig = "?" + err.Error()
			}
			_, _ = fmt.Fprintf(c, "%s %s\n", name, orig)
			_ = c.Close()
		}
	}()
}

// originalDst is the destination a connection was sent to before a redirect (SO_ORIGINAL_DST);
// where no NAT rule saw the connection (the peer's namespace) the kernel knows none (ENOENT)
// and it is the local address.
func originalDst(c *net.TCPConn) (string, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	var addr *unix.IPv6Mreq // 16 bytes: a struct sockaddr_in
	var serr error
	if err := raw.Control(func(fd uintptr) {
		addr, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return "", err
	}
	if errors.Is(serr, unix.ENOENT) {
		return c.LocalAddr().String(), nil
	}
	if serr != nil {
		return "", serr
	}
	m := addr.Multiaddr
	return hostPort(net.IPv4(m[4], m[5], m[6], m[7]).String(), int(m[2])<<8|int(m[3])), nil
}

func dial(from *netns, uid int, to string) (string, error) {
	var line string
	err := inNetns(from, uid, func() error {
		c, err := net.DialTimeout("tcp4", to, 5*time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		return nil
	})
	return strings.TrimSpace(line), err
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }

func tableNames(ts []*nftables.Table) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}
