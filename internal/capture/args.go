package capture

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// The command-line flags of cmd/sluice-init, which the injector writes with Args.
const (
	FlagInboundPort          = "inbound-port"
	FlagOutboundPort         = "outbound-port"
	FlagProxyUID             = "proxy-uid"
	FlagExcludeInboundPorts  = "exclude-inbound-ports"
	FlagExcludeOutboundPorts = "exclude-outbound-ports"
	FlagExcludeOutboundCIDRs = "exclude-outbound-cidrs"
)

// Args are the flags that make ParseArgs return c.
func (c Config) Args() []string {
	args := []string{
		flagArg(FlagInboundPort, strconv.Itoa(int(c.InboundPort))),
		flagArg(FlagOutboundPort, strconv.Itoa(int(c.OutboundPort))),
		flagArg(FlagProxyUID, strconv.FormatUint(uint64(c.ProxyUID), 10)),
	}
	if len(c.ExcludeInboundPorts) > 0 {
		args = append(args, flagArg(FlagExcludeInboundPorts, FormatPorts(c.ExcludeInboundPorts)))
	}
	if len(c.ExcludeOutboundPorts) > 0 {
		args = append(args, flagArg(FlagExcludeOutboundPorts, FormatPorts(c.ExcludeOutboundPorts)))
	}
	if len(c.ExcludeOutboundCIDRs) > 0 {
		args = append(args, flagArg(FlagExcludeOutboundCIDRs, FormatCIDRs(c.ExcludeOutboundCIDRs)))
	}
	return args
}

func flagArg(name, value string) string { return "--" + name + "=" + value }

// ParseArgs reads the flags of Args; usage and errors go to out.
func ParseArgs(name string, args []string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	config := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q; every setting is a --flag=value", fs.Args())
	}
	return config()
}

// BindFlags registers the flags of Args on fs; once fs is parsed, the returned function gives
// the Config they say, or an error naming the flag.
func BindFlags(fs *flag.FlagSet) func() (Config, error) {
	in := fs.Uint(FlagInboundPort, DefaultInboundPort, "Port of the sidecar's inbound listener; inbound TCP is redirected to it.")
	outPort := fs.Uint(FlagOutboundPort, DefaultOutboundPort, "Port of the sidecar's outbound listener; outbound TCP is redirected to it.")
	uid := fs.Uint(FlagProxyUID, DefaultProxyUID, "UID of the sidecar; its connections are never redirected.")
	inPorts := fs.String(FlagExcludeInboundPorts, "", "Comma-separated inbound ports reached directly.")
	outPorts := fs.String(FlagExcludeOutboundPorts, "", "Comma-separated outbound ports reached directly.")
	cidrs := fs.String(FlagExcludeOutboundCIDRs, "", "Comma-separated IPv4 CIDRs reached directly.")
	return func() (Config, error) { return fromFlags(*in, *outPort, *uid, *inPorts, *outPorts, *cidrs) }
}

func fromFlags(in, outPort, uid uint, inPorts, outPorts, cidrs string) (Config, error) {
	c := Config{ProxyUID: uint32(min(uid, 1<<32-1))}
	var err error
	if c.InboundPort, err = port(FlagInboundPort, in); err != nil {
		return Config{}, err
	}
	if c.OutboundPort, err = port(FlagOutboundPort, outPort); err != nil {
		return Config{}, err
	}
	if c.ExcludeInboundPorts, err = ParsePorts(inPorts); err != nil {
		return Config{}, fmt.Errorf("--%s: %w", FlagExcludeInboundPorts, err)
	}
	if c.ExcludeOutboundPorts, err = ParsePorts(outPorts); err != nil {
		return Config{}, fmt.Errorf("--%s: %w", FlagExcludeOutboundPorts, err)
	}
	var prefixes []netip.Prefix
	if prefixes, err = ParseCIDRs(cidrs); err != nil {
		return Config{}, fmt.Errorf("--%s: %w", FlagExcludeOutboundCIDRs, err)
	}
	c.ExcludeOutboundCIDRs = prefixes
	return c, c.Validate()
}

func port(name string, v uint) (uint16, error) {
	if v == 0 || v > 65535 {
		return 0, fmt.Errorf("--%s=%d is not a port; want 1-65535", name, v)
	}
	return uint16(v), nil
}
