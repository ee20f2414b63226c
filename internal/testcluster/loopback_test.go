package testcluster_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testcluster"
)

func TestLoopbackMapping(t *testing.T) {
	for podIP, want := range map[string]string{"192.0.2.1": "127.0.0.1", "192.0.2.42": "127.0.0.42", "192.0.2.255": "127.0.0.255"} {
		got, err := testcluster.LoopbackFor(podIP)
		if err != nil || got != want {
			t.Errorf("LoopbackFor(%q) = %q, %v; want %q", podIP, got, err, want)
		}
		back, err := testcluster.PodIPFor(got)
		if err != nil || back != podIP {
			t.Errorf("PodIPFor(%q) = %q, %v; want %q", got, back, err, podIP)
		}
	}
	for _, bad := range []string{"", "127.0.0.1", "192.0.3.1", "10.0.0.1", "2001:db8::1", "192.0.2.1:80"} {
		if got, err := testcluster.LoopbackFor(bad); err == nil {
			t.Errorf("LoopbackFor(%q) = %q, want an error", bad, got)
		}
	}
	for _, bad := range []string{"", "192.0.2.1", "127.0.1.1", "::1"} {
		if got, err := testcluster.PodIPFor(bad); err == nil {
			t.Errorf("PodIPFor(%q) = %q, want an error", bad, got)
		}
	}
}

func TestDialLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.7:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte(conn.LocalAddr().String()))
			_ = conn.Close()
		}
	}()
	for _, addr := range []string{"192.0.2.7:" + port, "127.0.0.7:" + port} {
		conn, err := testcluster.DialLoopback(context.Background(), addr)
		if err != nil {
			t.Fatalf("DialLoopback(%s): %v", addr, err)
		}
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		_ = conn.Close()
		if got := string(buf[:n]); got != "127.0.0.7:"+port {
			t.Errorf("DialLoopback(%s) reached %s, want 127.0.0.7:%s", addr, got, port)
		}
	}
	for _, addr := range []string{"10.0.0.1:80", "198.51.100.1:80", "example.com:80", "192.0.2.7"} {
		if conn, err := testcluster.DialLoopback(context.Background(), addr); err == nil {
			_ = conn.Close()
			t.Errorf("DialLoopback(%s) connected, want a refusal", addr)
		} else if !strings.Contains(err.Error(), addr) && !strings.Contains(err.Error(), "missing port") {
			t.Errorf("DialLoopback(%s): %v; want the address in the message", addr, err)
		}
	}
}
