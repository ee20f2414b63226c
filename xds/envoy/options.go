package envoy

import "time"

// Options shape the resources Translate builds; the zero value gets the defaults below.
type Options struct {
	// XDSClusterName is the bootstrap's static cluster for the xDS server (default "sluice-xds").
	// Translate never emits a cluster of that name: Envoy rejects a CDS cluster that shadows a
	// static one.
	XDSClusterName string
	// AccessLog turns on the JSON access log to stdout on every Envoy HTTP connection manager.
	AccessLog bool
	// TracingCollector is host:port of an OpenTelemetry collector (OTLP/gRPC); empty means no
	// tracing.
	TracingCollector string
	// OutboundPort is where iptables sends an Envoy sidecar's outbound traffic (default 15001).
	OutboundPort uint32
	// InboundPort is where iptables sends an Envoy sidecar's inbound traffic (default 15006).
	InboundPort uint32
	// ConnectTimeout bounds connecting to an upstream host (default 5s).
	ConnectTimeout time.Duration
}

// Defaults.
const (
	DefaultOutboundPort   = 15001
	DefaultInboundPort    = 15006
	DefaultConnectTimeout = 5 * time.Second
)

func (o Options) withDefaults() Options {
	if o.XDSClusterName == "" {
		o.XDSClusterName = DefaultXDSClusterName
	}
	if o.OutboundPort == 0 {
		o.OutboundPort = DefaultOutboundPort
	}
	if o.InboundPort == 0 {
		o.InboundPort = DefaultInboundPort
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	return o
}
