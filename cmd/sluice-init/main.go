// Command sluice-init is the init container the injector adds to a pod with an Envoy sidecar. It
// programs the pod's network namespace (nftables over netlink, no iptables binary) so that inbound
// and outbound TCP goes through the sidecar, except the sidecar's own traffic (its UID), loopback
// and the excluded ports and CIDRs; and it writes the sidecar's file-based SDS sources for its xDS
// client certificate into a volume the two share. Then it exits. It needs the NET_ADMIN capability
// and no other; see docs/injection.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-mesh/sluice/internal/capture"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

func main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	captureConfig := capture.BindFlags(fs)
	xdsTLS := envoy.BindXDSClientFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	if fs.NArg() > 0 {
		fail(2, fmt.Errorf("unexpected arguments %q; every setting is a --flag=value", fs.Args()))
	}
	cfg, err := captureConfig()
	if err != nil {
		fail(2, err)
	}
	if xdsTLS.SDSDir != "" {
		if err := writeFiles(*xdsTLS); err != nil {
			fail(1, err)
		}
	}
	if err := capture.Apply(cfg); err != nil {
		fail(1, err)
	}
	fmt.Printf("sluice-init: inbound TCP -> :%d, outbound TCP -> :%d, except UID %d, loopback, inbound ports [%s], outbound ports [%s], outbound CIDRs [%s]\n",
		cfg.InboundPort, cfg.OutboundPort, cfg.ProxyUID,
		capture.FormatPorts(cfg.ExcludeInboundPorts), capture.FormatPorts(cfg.ExcludeOutboundPorts), capture.FormatCIDRs(cfg.ExcludeOutboundCIDRs))
}

// writeFiles writes the SDS files; they name certificate files and hold no key material.
func writeFiles(t envoy.XDSClientTLS) error {
	files, err := envoy.XDSClientSecretFiles(t)
	if err != nil {
		return err
	}
	for path, data := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil { //nolint:gosec // the sidecar (another UID) reads them; they hold file names only
			return err
		}
	}
	fmt.Printf("sluice-init: wrote %d SDS files into %s\n", len(files), t.SDSDir)
	return nil
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "sluice-init:", err)
	os.Exit(code)
}
