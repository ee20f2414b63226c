package envoy

import (
	"net/netip"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Which inbound chain a connection gets, replayed on the emitted virtualInbound (no Envoy runs
// here): the TLS inspector's filter_disabled predicate decides whether the connection's transport
// protocol can be "tls"; then Envoy's documented selection prunes the chains by destination port,
// then destination IP, then transport protocol, each step keeping the most specific matches (an
// exact port over none, the longest prefix over shorter ones and none, an exact transport protocol
// over none), without going back; with nothing left, the default chain.
func TestInboundChainSelection(t *testing.T) {
	for _, tc := range []struct {
		golden, dst string
		tls         bool // the client starts a TLS handshake
		want        string
	}{
		// STRICT: mTLS is served, plain text refused, also on ports no Service routes to.
		{"mtls_envoy_strict", "10.244.1.5:8080", true, "inbound|8080|10.244.1.5|tls"},
		{"mtls_envoy_strict", "10.244.1.5:8080", false, "inbound|8080|10.244.1.5|plaintext-refused"},
		{"mtls_envoy_strict", "10.244.2.7:8080", false, "inbound|8080|10.244.2.7|plaintext-refused"}, // not ready
		{"mtls_envoy_strict", "10.244.1.5:9999", false, "inbound|10.244.1.5|plaintext-refused"},
		{"mtls_envoy_strict", "10.244.1.5:9999", true, "inbound|10.244.1.5|plaintext-refused"},
		{"mtls_envoy_strict", "10.244.1.8:5432", true, "inbound|5432|10.244.1.8|tls"},
		{"mtls_envoy_strict", "10.244.1.8:5432", false, "inbound|5432|10.244.1.8|plaintext-refused"},
		// The DISABLE pod of the same port keeps its plain rate-limit chain.
		{"mtls_envoy_strict", "10.244.3.9:8080", false, "inbound|http|8080|10.244.3.9"},
		// A pod the mesh does not know: the port-wide chain, or the default chain.
		{"mtls_envoy_strict", "10.9.9.9:8080", false, "inbound|http|8080"},
		{"mtls_envoy_strict", "10.9.9.9:1234", false, "inbound|tcp"},
		// PERMISSIVE: both.
		{"mtls_envoy_permissive", "10.244.1.5:50051", true, "inbound|50051|10.244.1.5|tls"},
		{"mtls_envoy_permissive", "10.244.1.5:50051", false, "inbound|50051|10.244.1.5|raw_buffer"},
		{"mtls_envoy_permissive", "10.244.3.9:50051", false, "inbound|http|50051"},
		// DISABLE: nothing of its own.
		{"mtls_envoy_disable", "10.244.1.5:8080", false, "inbound|http|8080"},
		{"mtls_envoy_disable", "10.244.1.5:8080", true, "inbound|http|8080"},
		// Rules: both chains of the PERMISSIVE pod carry them (see authz_envoy.out.yaml).
		{"authz_envoy", "10.1.0.2:8080", false, "inbound|8080|10.1.0.2|raw_buffer"},
		{"authz_envoy", "10.1.0.1:7000", true, "inbound|7000|10.1.0.1|tls"},
		{"authz_envoy", "10.1.0.1:9000", false, "inbound|9000|10.1.0.1|plaintext-refused"},
	} {
		s := translateGolden(t, tc.golden, filepath.Join("testdata", tc.golden+".in.yaml"))
		l := s.Listeners[FlavourEnvoy][VirtualInboundListener]
		dst := netip.MustParseAddrPort(tc.dst)
		if got := selectChain(l, dst, tc.tls); got != tc.want {
			t.Errorf("%s: %s (tls %v) gets chain %q, want %q", tc.golden, tc.dst, tc.tls, got, tc.want)
		}
	}
}

func selectChain(l *listenerv3.Listener, dst netip.AddrPort, tls bool) string {
	transport := "raw_buffer"
	if tls && inspected(l, dst.Port()) {
		transport = transportProtocolTLS
	}
	chains := l.GetFilterChains()
	chains = mostSpecific(chains, func(m *listenerv3.FilterChainMatch) int {
		switch p := m.GetDestinationPort(); {
		case p == nil:
			return 0
		case p.GetValue() == uint32(dst.Port()):
			return 1
		}
		return -1
	})
	chains = mostSpecific(chains, func(m *listenerv3.FilterChainMatch) int {
		best := -1
		if len(m.GetPrefixRanges()) == 0 {
			best = 0
		}
		for _, r := range m.GetPrefixRanges() {
			prefix := netip.PrefixFrom(netip.MustParseAddr(r.GetAddressPrefix()), int(r.GetPrefixLen().GetValue()))
			if prefix.Contains(dst.Addr()) {
				best = max(best, 1+prefix.Bits())
			}
		}
		return best
	})
	chains = mostSpecific(chains, func(m *listenerv3.FilterChainMatch) int {
		switch m.GetTransportProtocol() {
		case "":
			return 0
		case transport:
			return 1
		}
		return -1
	})
	switch len(chains) {
	case 0:
		return l.GetDefaultFilterChain().GetName()
	case 1:
		return chains[0].GetName()
	}
	return "ambiguous"
}

// mostSpecific keeps the chains with the highest score; a negative score does not match.
func mostSpecific(chains []*listenerv3.FilterChain, score func(*listenerv3.FilterChainMatch) int) []*listenerv3.FilterChain {
	best := -1
	var out []*listenerv3.FilterChain
	for _, fc := range chains {
		switch s := score(fc.GetFilterChainMatch()); {
		case s > best:
			best, out = s, []*listenerv3.FilterChain{fc}
		case s == best && s >= 0:
			out = append(out, fc)
		}
	}
	return out
}

// inspected reports whether the TLS inspector runs for connections to port.
func inspected(l *listenerv3.Listener, port uint16) bool {
	for _, f := range l.GetListenerFilters() {
		if f.GetName() == tlsInspectorName {
			return !predicate(f.GetFilterDisabled(), port)
		}
	}
	return false
}

func predicate(p *listenerv3.ListenerFilterChainMatchPredicate, port uint16) bool {
	switch r := p.GetRule().(type) {
	case nil:
		return false // no filter_disabled: never disabled
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		return !predicate(r.NotMatch, port)
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch:
		for _, x := range r.OrMatch.GetRules() {
			if predicate(x, port) {
				return true
			}
		}
		return false
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int32(port) >= r.DestinationPortRange.GetStart() && int32(port) < r.DestinationPortRange.GetEnd()
	}
	panic("predicate not modelled")
}
