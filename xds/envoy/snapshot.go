package envoy

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Snapshot is every xDS resource of the mesh, keyed by resource name. Only listeners differ between
// flavours; a node gets Listeners[its flavour] and everything else.
type Snapshot struct {
	Listeners map[Flavour]map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Secrets is empty until workload identity (ZeroTrust) lands; Validate already checks that every
	// secret a resource names is here.
	Secrets map[string]*tlsv3.Secret
}

// NewSnapshot returns an empty snapshot with every map allocated.
func NewSnapshot() *Snapshot {
	s := &Snapshot{
		Listeners: map[Flavour]map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
	for _, f := range Flavours {
		s.Listeners[f] = map[string]*listenerv3.Listener{}
	}
	return s
}

// Translate turns the IR into xDS resources. It is a pure function of its arguments. It fails,
// naming the Service port and the objects behind it, when the IR cannot be expressed (a route
// without weight, a mirror to a port not in the mesh, an unknown load balancer...). It does not
// run Validate; callers that publish the result should.
func Translate(in *ir.IR, opts Options) (*Snapshot, error) {
	opts = opts.withDefaults()
	s := NewSnapshot()
	if in == nil {
		in = &ir.IR{}
	}
	b := &builder{s: s, opts: opts, clusters: meshClusters(in)}
	for si := range in.Services {
		svc := &in.Services[si]
		for pi := range svc.Ports {
			port := &svc.Ports[pi]
			if err := b.port(svc, port); err != nil {
				b.errs = append(b.errs, fmt.Errorf("service %s/%s port %d%s: %w", svc.Namespace, svc.Name, port.Port, sources(port.Sources), err))
			}
		}
	}
	b.fixed(in)
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	return s, nil
}

type builder struct {
	s        *Snapshot
	opts     Options
	clusters map[string]bool // every Service cluster the IR defines, for checking references
	errs     []error
}

// meshClusters names every subset cluster of the IR.
func meshClusters(in *ir.IR) map[string]bool {
	out := map[string]bool{}
	for _, svc := range in.Services {
		for _, port := range svc.Ports {
			for _, ss := range port.Subsets {
				out[ClusterName(port.Port, ss.Name, svc.Hostname())] = true
			}
		}
	}
	return out
}

func (b *builder) port(svc *ir.Service, port *ir.ServicePort) error {
	switch port.Protocol {
	case ir.ProtocolHTTP, ir.ProtocolGRPC, ir.ProtocolTCP:
	default:
		return fmt.Errorf("unknown protocol %q", port.Protocol)
	}
	all := -1
	for i, ss := range port.Subsets {
		if ss.Name == ir.AllEndpoints {
			all = i
		}
	}
	if all < 0 {
		return errors.New("the all-endpoints subset is missing")
	}
	cs, err := portClusters(svc, port, b.opts)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := b.addCluster(c); err != nil {
			return err
		}
	}
	for _, cla := range portEndpoints(svc, port) {
		b.s.Endpoints[cla.GetClusterName()] = cla
	}
	envoyListeners := b.s.Listeners[FlavourEnvoy]
	if hasClusterIP(svc) {
		l, err := envoyServiceListener(svc, port, b.clusters, b.opts)
		if err != nil {
			return err
		}
		if _, dup := envoyListeners[l.GetName()]; dup {
			return fmt.Errorf("listener %q is defined twice (two Services with ClusterIP %s?)", l.GetName(), svc.ClusterIP)
		}
		envoyListeners[l.GetName()] = l
	}
	if port.Protocol == ir.ProtocolTCP {
		return nil
	}
	rc, err := portRouteConfig(svc, port, b.clusters)
	if err != nil {
		return err
	}
	if _, dup := b.s.Routes[rc.GetName()]; dup {
		return fmt.Errorf("route configuration %q is defined twice", rc.GetName())
	}
	b.s.Routes[rc.GetName()] = rc
	grpc := b.s.Listeners[FlavourGRPC]
	api := grpcAPIListener(svc, port)
	grpc[api.GetName()] = api
	for _, ep := range port.Subsets[all].Endpoints {
		if ep.Ready {
			// Identical for every Service that shares the endpoint, so a repeat is harmless.
			l := grpcServerListener(ep.Address, ep.Port)
			grpc[l.GetName()] = l
		}
	}
	return nil
}

// fixed adds the resources that do not come from one Service port.
func (b *builder) fixed(in *ir.IR) {
	envoy := b.s.Listeners[FlavourEnvoy]
	envoy[VirtualOutboundListener] = virtualOutbound(b.opts)
	envoy[VirtualInboundListener] = virtualInbound(inboundL7Ports(in), b.opts)
	b.errs = append(b.errs, b.addCluster(originalDstCluster(PassthroughCluster, b.opts)))
	inbound := originalDstCluster(InboundPassthroughCluster, b.opts)
	inbound.TypedExtensionProtocolOptions = downstreamProtocolOptions()
	b.errs = append(b.errs, b.addCluster(inbound))
	if b.opts.TracingCollector != "" {
		c, err := tracingCluster(b.opts.TracingCollector, b.opts)
		if err == nil {
			err = b.addCluster(c)
		}
		b.errs = append(b.errs, err)
	}
}

func (b *builder) addCluster(c *clusterv3.Cluster) error {
	switch name := c.GetName(); {
	case name == b.opts.XDSClusterName:
		return fmt.Errorf("cluster %q has the name of the bootstrap's xDS cluster", name)
	case b.s.Clusters[name] != nil:
		return fmt.Errorf("cluster %q is defined twice", name)
	}
	b.s.Clusters[c.GetName()] = c
	return nil
}

// hasClusterIP is false for headless Services, which get no Envoy listener: there is no virtual IP
// to catch, and their clients connect to pod IPs, which virtualOutbound passes through.
func hasClusterIP(svc *ir.Service) bool {
	return svc.ClusterIP != "" && svc.ClusterIP != "None"
}

func sources(refs []ir.ObjectRef) string {
	if len(refs) == 0 {
		return ""
	}
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return " (from " + strings.Join(s, ", ") + ")"
}
