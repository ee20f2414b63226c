package testcluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// The API server refuses loopback addresses in EndpointSlices and tests may only send traffic to
// loopback: a pod's IP is 192.0.2.N (TEST-NET-1, never routed) and its server listens on
// 127.0.0.N, the same last byte.
var (
	podNet      = netip.MustParsePrefix("192.0.2.0/24")
	loopbackNet = netip.MustParsePrefix("127.0.0.0/24")
)

// LoopbackFor returns the loopback address where the server of the pod with IP podIP listens:
// 127.0.0.N for 192.0.2.N. Any other address is an error. 192.0.2.0 maps to 127.0.0.0, which
// cannot be listened on; kwok never hands it out (it starts at the range's first address + 1).
func LoopbackFor(podIP string) (string, error) {
	ip, err := netip.ParseAddr(podIP)
	if err != nil || !podNet.Contains(ip) {
		return "", fmt.Errorf("%q is not a test pod IP (192.0.2.0/24)", podIP)
	}
	b := ip.As4()
	return netip.AddrFrom4([4]byte{127, 0, 0, b[3]}).String(), nil
}

// PodIPFor is the inverse of LoopbackFor: 192.0.2.N for 127.0.0.N.
func PodIPFor(loopback string) (string, error) {
	ip, err := netip.ParseAddr(loopback)
	if err != nil || !loopbackNet.Contains(ip) {
		return "", fmt.Errorf("%q is not in 127.0.0.0/24", loopback)
	}
	b := ip.As4()
	return netip.AddrFrom4([4]byte{192, 0, 2, b[3]}).String(), nil
}

// DialLoopback connects to addr (host:port) as the pod network would: a test pod IP 192.0.2.N is
// reached on 127.0.0.N, a loopback address as it is, and any other address is refused, so a test
// never sends a packet off the machine. Its signature suits grpc.WithContextDialer.
func DialLoopback(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return nil, fmt.Errorf("test dialer: %s is not an IP address", addr)
	case podNet.Contains(ip):
		host, _ = LoopbackFor(host)
	case ip.IsLoopback():
	default:
		return nil, fmt.Errorf("test dialer: %s is neither a test pod IP nor loopback", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
}

// checkPodCIDR says why cidr cannot be a node's pod range: it must lie within 192.0.2.0/24.
func checkPodCIDR(cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	if p != p.Masked() {
		return fmt.Errorf("pod CIDR %q: not a network address (want %s)", cidr, p.Masked())
	}
	if !p.Addr().Is4() || p.Bits() < podNet.Bits() || !podNet.Contains(p.Addr()) {
		return fmt.Errorf("pod CIDR %q: must lie within %s, which LoopbackFor maps to loopback", cidr, podNet)
	}
	return nil
}
