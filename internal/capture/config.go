// Package capture sends a pod's TCP traffic through its Envoy sidecar: inbound connections to the
// sidecar's inbound port, outbound ones to its outbound port, except the sidecar's own connections
// (its UID), loopback, and the ports and CIDRs a pod excludes. It programs nftables over netlink
// (github.com/google/nftables), so the init container needs no iptables or nft binary, only the
// NET_ADMIN capability in the pod's network namespace. cmd/sluice-init runs it; docs/injection.md
// describes the rules.
package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults of Config: the ports xds/envoy's listeners use and the sidecar's UID.
const (
	DefaultInboundPort  = 15006
	DefaultOutboundPort = 15001
	DefaultProxyUID     = 1337
)

// Config says where captured traffic goes and what is left alone. IPv4 TCP only.
type Config struct {
	// InboundPort receives inbound TCP connections (the sidecar's virtualInbound listener).
	InboundPort uint16
	// OutboundPort receives outbound TCP connections (the sidecar's virtualOutbound listener).
	OutboundPort uint16
	// ProxyUID owns the sidecar's sockets; its outbound connections are never redirected, or the
	// sidecar would loop into itself.
	ProxyUID uint32
	// ExcludeInboundPorts reach the application (or the sidecar's own listeners) directly.
	ExcludeInboundPorts []uint16
	// ExcludeOutboundPorts and ExcludeOutboundCIDRs are destinations reached directly.
	ExcludeOutboundPorts []uint16
	ExcludeOutboundCIDRs []netip.Prefix
}

// Validate names the first field that cannot be programmed.
func (c Config) Validate() error {
	switch {
	case c.InboundPort == 0:
		return fmt.Errorf("capture: the inbound port is 0; set it to the sidecar's inbound listener port (default %d)", DefaultInboundPort)
	case c.OutboundPort == 0:
		return fmt.Errorf("capture: the outbound port is 0; set it to the sidecar's outbound listener port (default %d)", DefaultOutboundPort)
	case c.InboundPort == c.OutboundPort:
		return fmt.Errorf("capture: the inbound and outbound ports are both %d; they must differ", c.InboundPort)
	case c.ProxyUID == 0:
		return fmt.Errorf("capture: the proxy UID is 0 (root); the sidecar must run as its own non-root UID (default %d)", DefaultProxyUID)
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("capture: excluded outbound CIDR %q is not an IPv4 prefix; only IPv4 is captured", p)
		}
	}
	return nil
}

// ParsePorts reads a comma-separated list of ports ("8080, 9090"), as the exclusion annotations
// hold them; what is empty yields nil. The result is sorted and has no duplicates.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a port; want numbers 1-65535 separated by commas, e.g. \"8080,9090\"", f)
		}
		out = append(out, uint16(n))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ParseCIDRs reads a comma-separated list of IPv4 CIDRs ("10.0.0.0/8, 192.168.1.5/32"); a bare
// address is a /32. The result is sorted and has no duplicates.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not an IPv4 CIDR; want e.g. \"10.0.0.0/8,192.168.1.5/32\"", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 CIDR; only IPv4 traffic is captured", f)
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}

// FormatPorts is the inverse of ParsePorts.
func FormatPorts(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// FormatCIDRs is the inverse of ParseCIDRs.
func FormatCIDRs(cidrs []netip.Prefix) string {
	s := make([]string, len(cidrs))
	for i, p := range cidrs {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
