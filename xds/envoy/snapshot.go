package envoy

import (
	"encoding/json"
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

// Snapshot is every xDS resource of the mesh, keyed by resource name. Listeners differ between
// flavours, and so do some clusters; a node gets Listeners[its flavour], ClustersOf(its flavour)
// and everything else.
type Snapshot struct {
	Listeners map[Flavour]map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	// ClusterOverrides holds, per flavour, that flavour's own version of some of Clusters (under the
	// same names): clusters towards mTLS servers carry a TLS context, which names the bootstrap's
	// certificate provider for proxyless gRPC and SDS secrets for Envoy sidecars.
	ClusterOverrides map[Flavour]map[string]*clusterv3.Cluster
	Endpoints        map[string]*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS secrets: each identity's certificate (named by its SPIFFE ID) and each
	// trust domain's CA certificates (TrustBundleSecret). WorkloadSecret is resolved per node by
	// the SDS server and is not here; Validate does not require the names served per node (a
	// trust bundle whose Secrets are not issued yet must not stop a publish: Envoy waits for it).
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
		// Filled in by flavour as overrides appear.
		ClusterOverrides: map[Flavour]map[string]*clusterv3.Cluster{},
	}
	for _, f := range Flavours {
		s.Listeners[f] = map[string]*listenerv3.Listener{}
	}
	return s
}

// ClustersOf is the clusters a node of flavour f gets: Clusters, with f's overrides in place of
// the clusters of the same name. It returns a new map.
func (s *Snapshot) ClustersOf(f Flavour) map[string]*clusterv3.Cluster {
	out := make(map[string]*clusterv3.Cluster, len(s.Clusters))
	for name, c := range s.Clusters {
		out[name] = c
	}
	for name, c := range s.ClusterOverrides[f] {
		out[name] = c
	}
	return out
}

// Translate turns the IR into xDS resources. It is a pure function of its arguments. It fails,
// naming the Service port and the objects behind it, when the IR cannot be expressed (a route
// without weight, a mirror to a port not in the mesh, an unknown load balancer...). It does not
// run Validate; callers that publish the result should. A caller that translates again and again
// should use a Translator, which gives the same result and reuses the messages of unchanged ports.
func Translate(in *ir.IR, opts Options) (*Snapshot, error) {
	return NewTranslator(opts).Translate(in)
}

type builder struct {
	s        *Snapshot
	opts     Options
	clusters *clusterSet // every Service cluster the IR defines, for checking references
	errs     []error
	// serverListener returns the gRPC server listener of k (memoised by a Translator); authz is
	// what k.authz encodes.
	serverListener func(k serverKey, authz *ir.Authorization) *listenerv3.Listener
}

// clusterSet is the set of Service clusters of the mesh. When looked is set, it records every
// lookup and its answer: what a port's resources depend on beyond the port itself.
type clusterSet struct {
	names  map[string]bool
	looked *[]clusterLookup
}

type clusterLookup struct {
	name  string
	found bool
}

func (c *clusterSet) has(name string) bool {
	found := c.names[name]
	if c.looked != nil {
		*c.looked = append(*c.looked, clusterLookup{name: name, found: found})
	}
	return found
}

// meshClusters names every subset cluster of the IR.
func meshClusters(in *ir.IR) *clusterSet {
	out := map[string]bool{}
	for _, svc := range in.Services {
		for _, port := range svc.Ports {
			for _, ss := range port.Subsets {
				out[ClusterName(port.Port, ss.Name, svc.Hostname())] = true
			}
		}
	}
	return &clusterSet{names: out}
}

// portResources are the resources built for one Service port, in the order port adds them.
type portResources struct {
	clusters        []*clusterv3.Cluster
	grpcClusters    []*clusterv3.Cluster // the gRPC flavour's overrides of some of clusters
	envoyClusters   []*clusterv3.Cluster // the Envoy flavour's overrides of some of clusters
	endpoints       []*endpointv3.ClusterLoadAssignment
	envoyListener   *listenerv3.Listener // nil for headless Services
	route           *routev3.RouteConfiguration
	apiListener     *listenerv3.Listener
	serverListeners []*listenerv3.Listener
	serverKeys      []serverKey // the address of each of serverListeners
}

// port builds the resources of one Service port and adds them to the snapshot; out (if not nil)
// gets them too.
func (b *builder) port(svc *ir.Service, port *ir.ServicePort, out *portResources) error {
	if out == nil {
		out = &portResources{}
	}
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
	out.clusters = cs
	out.grpcClusters = grpcClusters(cs, port)
	out.envoyClusters = envoyClusters(cs, port)
	out.endpoints = portEndpoints(svc, port)
	if err := b.addPortClusters(out); err != nil {
		return err
	}
	if hasClusterIP(svc) {
		l, err := envoyServiceListener(svc, port, b.clusters, b.opts)
		if err != nil {
			return err
		}
		out.envoyListener = l
		if err := b.addEnvoyListener(svc, l); err != nil {
			return err
		}
	}
	if port.Protocol == ir.ProtocolTCP {
		return nil
	}
	rc, err := portRouteConfig(svc, port, b.clusters)
	if err != nil {
		return err
	}
	out.route = rc
	out.apiListener = grpcAPIListener(svc, port)
	for _, ep := range port.Subsets[all].Endpoints {
		if ep.Ready {
			k := serverKey{ip: ep.Address, port: ep.Port, mode: ep.MTLS, authz: authzKey(ep.Authorization)}
			out.serverListeners = append(out.serverListeners, b.serverListener(k, ep.Authorization))
			out.serverKeys = append(out.serverKeys, k)
		}
	}
	return b.addPortRouting(out)
}

// authzKey encodes an endpoint's authorization for serverKey: equal keys, equal authorizations.
func authzKey(a *ir.Authorization) string {
	if a == nil {
		return ""
	}
	b, err := json.Marshal(a)
	if err != nil {
		// Only strings and slices of them: encoding does not fail.
		panic(fmt.Sprintf("encoding %v: %v", a, err))
	}
	return string(b)
}

// addPort adds resources that port built before, with the same checks against the rest of the
// snapshot, in the same order.
func (b *builder) addPort(svc *ir.Service, out *portResources) error {
	if err := b.addPortClusters(out); err != nil {
		return err
	}
	if out.envoyListener != nil {
		if err := b.addEnvoyListener(svc, out.envoyListener); err != nil {
			return err
		}
	}
	if out.route == nil {
		return nil
	}
	return b.addPortRouting(out)
}

func (b *builder) addPortClusters(out *portResources) error {
	for _, c := range out.clusters {
		if err := b.addCluster(c); err != nil {
			return err
		}
	}
	b.addOverrides(FlavourGRPC, out.grpcClusters)
	b.addOverrides(FlavourEnvoy, out.envoyClusters)
	for _, cla := range out.endpoints {
		b.s.Endpoints[cla.GetClusterName()] = cla
	}
	return nil
}

// addOverrides adds flavour f's own versions of some clusters.
func (b *builder) addOverrides(f Flavour, cs []*clusterv3.Cluster) {
	if len(cs) > 0 && b.s.ClusterOverrides[f] == nil {
		b.s.ClusterOverrides[f] = map[string]*clusterv3.Cluster{}
	}
	for _, c := range cs {
		b.s.ClusterOverrides[f][c.GetName()] = c
	}
}

func (b *builder) addEnvoyListener(svc *ir.Service, l *listenerv3.Listener) error {
	envoyListeners := b.s.Listeners[FlavourEnvoy]
	if _, dup := envoyListeners[l.GetName()]; dup {
		return fmt.Errorf("listener %q is defined twice (two Services with ClusterIP %s?)", l.GetName(), svc.ClusterIP)
	}
	envoyListeners[l.GetName()] = l
	return nil
}

// addPortRouting adds an HTTP or gRPC port's route configuration and gRPC listeners.
func (b *builder) addPortRouting(out *portResources) error {
	rc := out.route
	if _, dup := b.s.Routes[rc.GetName()]; dup {
		return fmt.Errorf("route configuration %q is defined twice", rc.GetName())
	}
	b.s.Routes[rc.GetName()] = rc
	grpc := b.s.Listeners[FlavourGRPC]
	grpc[out.apiListener.GetName()] = out.apiListener
	for _, l := range out.serverListeners {
		// Identical for every Service that shares the endpoint (the mode is the pod's), so a repeat
		// is harmless.
		grpc[l.GetName()] = l
	}
	return nil
}

// fixedResources are the resources that do not come from one Service port.
type fixedResources struct {
	l7Ports                         []uint32          // what virtualInbound was built for
	pods                            []inboundEndpoint // and the endpoints with chains of their own
	outbound, inbound               *listenerv3.Listener
	passthrough, inboundPassthrough *clusterv3.Cluster
	tracing                         *clusterv3.Cluster // nil without TracingCollector or on tracingErr
	tracingErr                      error
}

func buildFixed(l7Ports []uint32, pods []inboundEndpoint, opts Options) *fixedResources {
	f := &fixedResources{
		l7Ports:     l7Ports,
		pods:        pods,
		outbound:    virtualOutbound(opts),
		inbound:     virtualInbound(l7Ports, pods, opts),
		passthrough: originalDstCluster(PassthroughCluster, opts),
	}
	f.inboundPassthrough = originalDstCluster(InboundPassthroughCluster, opts)
	f.inboundPassthrough.TypedExtensionProtocolOptions = downstreamProtocolOptions()
	if opts.TracingCollector != "" {
		f.tracing, f.tracingErr = tracingCluster(opts.TracingCollector, opts)
	}
	return f
}

// addFixed adds the resources that do not come from one Service port.
func (b *builder) addFixed(f *fixedResources) {
	envoy := b.s.Listeners[FlavourEnvoy]
	envoy[VirtualOutboundListener] = f.outbound
	envoy[VirtualInboundListener] = f.inbound
	b.errs = append(b.errs, b.addCluster(f.passthrough))
	b.errs = append(b.errs, b.addCluster(f.inboundPassthrough))
	if b.opts.TracingCollector != "" {
		err := f.tracingErr
		if err == nil {
			err = b.addCluster(f.tracing)
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
