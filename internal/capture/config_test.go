package capture

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts(" 9090, 8080,,9090 ")
	if err != nil || !slices.Equal(got, []uint16{8080, 9090}) {
		t.Fatalf("ParsePorts = %v, %v; want [8080 9090]", got, err)
	}
	if FormatPorts(got) != "8080,9090" {
		t.Errorf("FormatPorts = %q", FormatPorts(got))
	}
	for _, bad := range []string{"0", "65536", "http", "80-90"} {
		if _, err := ParsePorts(bad); err == nil || !strings.Contains(err.Error(), "1-65535") {
			t.Errorf("ParsePorts(%q) error = %v; want one naming the valid range", bad, err)
		}
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs("10.1.2.3/8, 192.168.1.5,10.0.0.0/8")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.5/32")}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseCIDRs = %v, %v; want %v", got, err, want)
	}
	if FormatCIDRs(got) != "10.0.0.0/8,192.168.1.5/32" {
		t.Errorf("FormatCIDRs = %q", FormatCIDRs(got))
	}
	for _, bad := range []string{"fd00::/8", "10.0.0.0/33", "example.com"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted it", bad)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	ok := Config{InboundPort: DefaultInboundPort, OutboundPort: DefaultOutboundPort, ProxyUID: DefaultProxyUID}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, c := range map[string]Config{
		"inbound port":  {OutboundPort: 1, ProxyUID: 1},
		"outbound port": {InboundPort: 1, ProxyUID: 1},
		"both 7":        {InboundPort: 7, OutboundPort: 7, ProxyUID: 1},
		"proxy UID":     {InboundPort: 1, OutboundPort: 2},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v; want an error naming %q", c, err, want)
		}
	}
}

func TestArgsRoundTrip(t *testing.T) {
	c := Config{
		InboundPort: 1, OutboundPort: 2, ProxyUID: 3,
		ExcludeInboundPorts:  []uint16{15021, 15090},
		ExcludeOutboundPorts: []uint16{5432},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	got, err := ParseArgs("sluice-init", c.Args(), new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Args(), c.Args()) {
		t.Errorf("ParseArgs(%q).Args() = %q", c.Args(), got.Args())
	}
	if _, err := ParseArgs("sluice-init", []string{"--inbound-port=70000"}, new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "--inbound-port") {
		t.Errorf("an out-of-range port: error %v, want one naming the flag", err)
	}
}
