package injection

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Config is how the operator injects: the images, where the sidecars find the xDS server, and the
// proxy's resources. BindFlags makes it the manager's --proxy-* and --xds-service flags.
type Config struct {
	// ProxyImage is the Envoy image of the sidecar.
	ProxyImage string
	// InitImage runs cmd/sluice-init, which programs the traffic capture.
	InitImage string
	// XDSService is host:port of the operator's xDS Service, as the pods reach it.
	XDSService string
	// XDSServerName is the DNS name the xDS server's certificate carries (SNI and SAN check);
	// empty means XDSService's host.
	XDSServerName string
	// ProxyCPU and ProxyMemory are the sidecar's resource requests; ProxyMemoryLimit its limit.
	ProxyCPU, ProxyMemory, ProxyMemoryLimit string
}

// Defaults of Config.
const (
	DefaultProxyImage       = "docker.io/envoyproxy/envoy:v1.36.2"
	DefaultInitImage        = "ghcr.io/sluice-mesh/sluice-init:latest"
	DefaultXDSService       = "sluice-xds.sluice-system.svc:15010"
	DefaultProxyCPU         = "100m"
	DefaultProxyMemory      = "128Mi"
	DefaultProxyMemoryLimit = "512Mi"
)

// DefaultConfig is Config with every default.
func DefaultConfig() Config {
	return Config{
		ProxyImage: DefaultProxyImage, InitImage: DefaultInitImage, XDSService: DefaultXDSService,
		ProxyCPU: DefaultProxyCPU, ProxyMemory: DefaultProxyMemory, ProxyMemoryLimit: DefaultProxyMemoryLimit,
	}
}

// BindFlags registers the injection flags on fs, with c's values as defaults.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ProxyImage, "proxy-image", c.ProxyImage, "Envoy image of the injected sidecar.")
	fs.StringVar(&c.InitImage, "proxy-init-image", c.InitImage,
		"Image of sluice-init, the init container that redirects a pod's TCP to its sidecar (needs NET_ADMIN).")
	fs.StringVar(&c.XDSService, "xds-service", c.XDSService,
		"host:port of the operator's xDS Service that injected sidecars and proxyless gRPC pods connect to.")
	fs.StringVar(&c.XDSServerName, "xds-server-name", c.XDSServerName,
		"DNS name in the xDS server's certificate; empty means the host of --xds-service.")
	fs.StringVar(&c.ProxyCPU, "proxy-cpu", c.ProxyCPU, "CPU request of the injected sidecar.")
	fs.StringVar(&c.ProxyMemory, "proxy-memory", c.ProxyMemory, "Memory request of the injected sidecar.")
	fs.StringVar(&c.ProxyMemoryLimit, "proxy-memory-limit", c.ProxyMemoryLimit, "Memory limit of the injected sidecar.")
}

// xdsTarget is the parsed, checked Config.XDSService.
type xdsTarget struct {
	host       string
	port       uint32
	serverName string
}

// Validate names the first setting that cannot work.
func (c Config) Validate() error {
	_, err := c.xds()
	if err != nil {
		return err
	}
	if c.ProxyImage == "" || c.InitImage == "" {
		return errors.New("injection: --proxy-image and --proxy-init-image must name images")
	}
	for flagName, q := range map[string]string{"--proxy-cpu": c.ProxyCPU, "--proxy-memory": c.ProxyMemory, "--proxy-memory-limit": c.ProxyMemoryLimit} {
		if _, err := resource.ParseQuantity(q); err != nil {
			return fmt.Errorf("injection: %s=%q is not a quantity (e.g. 100m, 128Mi): %w", flagName, q, err)
		}
	}
	return nil
}

func (c Config) xds() (xdsTarget, error) {
	host, port, err := net.SplitHostPort(c.XDSService)
	n, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || host == "" || perr != nil || n == 0 {
		return xdsTarget{}, fmt.Errorf("injection: --xds-service=%q is not host:port (e.g. %s)", c.XDSService, DefaultXDSService)
	}
	t := xdsTarget{host: host, port: uint32(n), serverName: c.XDSServerName}
	if t.serverName == "" {
		t.serverName = host
	}
	return t, nil
}
