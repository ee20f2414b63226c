package podnet_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-mesh/sluice/internal/podnet"
)

// The listener opened before entering belongs to the host's network, not the namespace's: its
// socket's network-namespace cookie differs from that of a socket made inside.
func TestHostListenersStayInTheHostNetwork(t *testing.T) {
	needInside(t)
	ls, err := podnet.HostListeners()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 {
		t.Fatalf("got %d host listeners, want 1", len(ls))
	}
	defer func() { _ = ls[0].Close() }()
	inside, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = inside.Close() }()
	host, here := netnsCookie(t, ls[0]), netnsCookie(t, inside)
	if host == here {
		t.Fatalf("the host listener is in the namespace's network (cookie %d)", here)
	}
}

func netnsCookie(t *testing.T, l net.Listener) uint64 {
	t.Helper()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cookie uint64
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		cookie, sockErr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}); err != nil {
		t.Fatal(err)
	}
	if errors.Is(sockErr, syscall.ENOPROTOOPT) {
		t.Skip("this kernel has no SO_NETNS_COOKIE (Linux 5.14+)")
	}
	if sockErr != nil {
		t.Fatal(sockErr)
	}
	return cookie
}
