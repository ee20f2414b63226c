// Command sluice-init is the init container the injector adds to a pod with an Envoy sidecar: it
// programs the pod's network namespace (nftables over netlink, no iptables binary) so that inbound
// and outbound TCP goes through the sidecar, except the sidecar's own traffic (its UID), loopback
// and the excluded ports and CIDRs, then exits. It needs the NET_ADMIN capability and no other;
// see docs/injection.md.
package main

import (
	"fmt"
	"os"

	"github.com/sluice-mesh/sluice/internal/capture"
)

func main() {
	cfg, err := capture.ParseArgs(os.Args[0], os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-init:", err)
		os.Exit(2)
	}
	if err := capture.Apply(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-init:", err)
		os.Exit(1)
	}
	fmt.Printf("sluice-init: inbound TCP -> :%d, outbound TCP -> :%d, except UID %d, loopback, inbound ports [%s], outbound ports [%s], outbound CIDRs [%s]\n",
		cfg.InboundPort, cfg.OutboundPort, cfg.ProxyUID,
		capture.FormatPorts(cfg.ExcludeInboundPorts), capture.FormatPorts(cfg.ExcludeOutboundPorts), capture.FormatCIDRs(cfg.ExcludeOutboundCIDRs))
}
