package demoapp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
)

// Options configure a Server.
type Options struct {
	// Hostname is what UnaryCall answers as SimpleResponse.Hostname: the pod name in a cluster.
	Hostname string
	// Version is what UnaryCall answers as SimpleResponse.ServerId, so a client can tell stable
	// from canary.
	Version string
	// ErrorPercent (0-100) is the share of calls that fail with codes.Unavailable. The failures are
	// spread evenly by a counter, so 20 is exactly 1 call in 5. Change it with SetErrorPercent.
	ErrorPercent int
	// Latency is added to every call. Change it with SetLatency.
	Latency time.Duration

	// GRPCListener is where gRPC is served; when nil, Start listens on GRPCAddr.
	GRPCListener net.Listener
	// GRPCAddr is the address to listen on for gRPC when GRPCListener is nil; 127.0.0.1:0 when
	// empty.
	GRPCAddr string
	// MetricsListener is where /metrics is served; when nil, Start listens on MetricsAddr.
	MetricsListener net.Listener
	// MetricsAddr is the address to listen on for /metrics when MetricsListener is nil;
	// 127.0.0.1:0 when empty.
	MetricsAddr string
	// ServerOptions are added to the gRPC server's own (the OpenTelemetry metrics).
	ServerOptions []grpc.ServerOption
	// XDS serves as a proxyless gRPC xDS server: it serves only once the control plane named by its
	// bootstrap (GRPC_XDS_BOOTSTRAP, or an xds.BootstrapContentsForTesting server option) has sent
	// the Listener for its address, and takes its security (mutual TLS with the certificates of the
	// bootstrap's certificate provider) and routing from there.
	XDS bool
}

func validPercent(p int) error {
	if p < 0 || p > 100 {
		return fmt.Errorf("error percent %d: must be within 0-100", p)
	}
	return nil
}

func (o *Options) validate() error {
	if err := validPercent(o.ErrorPercent); err != nil {
		return err
	}
	if o.Latency < 0 {
		return errors.New("latency must not be negative")
	}
	return nil
}

// listen returns l, or a new listener on addr (127.0.0.1:0 when empty).
func listen(l net.Listener, addr string) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.Listen("tcp", addr)
}
