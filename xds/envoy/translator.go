package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// Translator is Translate with a memory: it returns the same snapshots as Translate (equal
// resources under the same names, the same errors), but a resource whose inputs did not change
// since its previous call is the very message it returned then. A Service port's resources are
// reused when the Service's namespace, name and ClusterIP, the ir.ServicePort (every field,
// compared exactly) and the answers to every mesh-wide cluster lookup its translation made (the
// destinations' and mirror targets' existence) are the same; the resources that come from no
// port when the inbound L7 ports and the endpoints with inbound chains of their own are the same;
// a gRPC server listener when its address is the same. So consumers that compare resources (xds/server's Publish) can tell unchanged ones by
// pointer.
//
// The cross-port checks (a listener, route configuration or cluster defined twice) run on every
// call. A Translator remembers only what its last call used. Callers must not change the returned
// messages. It is not safe for concurrent use.
type Translator struct {
	opts    Options
	ports   map[string]*portEntry // by portKey
	fixed   *fixedResources
	servers map[serverKey]*listenerv3.Listener
	secrets map[string]*tlsv3.Secret
	buf     bytes.Buffer
}

type portEntry struct {
	out    *portResources
	looked []clusterLookup // the cluster lookups of its translation, with their answers
}

type serverKey struct {
	ip    string
	port  uint32
	mode  ir.MTLSMode
	authz string // the endpoint's ir.Authorization, encoded; "" for none
}

// NewTranslator returns a Translator that translates with opts.
func NewTranslator(opts Options) *Translator {
	return &Translator{opts: opts.withDefaults()}
}

// SetOptions changes the options of the following translations. If they differ from the current
// ones (after defaults), nothing built before is reused.
func (t *Translator) SetOptions(opts Options) {
	if opts = opts.withDefaults(); opts != t.opts {
		*t = Translator{opts: opts}
	}
}

// Translate is Translate(in, opts) of the Translator's options.
func (t *Translator) Translate(in *ir.IR) (*Snapshot, error) {
	if in == nil {
		in = &ir.IR{}
	}
	clusters := meshClusters(in)
	ports := make(map[string]*portEntry, len(t.ports))
	servers := make(map[serverKey]*listenerv3.Listener, len(t.servers))
	b := &builder{s: NewSnapshot(), opts: t.opts, clusters: clusters}
	b.serverListener = func(k serverKey, authz *ir.Authorization) *listenerv3.Listener {
		if l := servers[k]; l != nil {
			return l
		}
		l := t.servers[k]
		if l == nil {
			l = grpcServerListener(k.ip, k.port, k.mode, authz)
		}
		servers[k] = l
		return l
	}
	for si := range in.Services {
		svc := &in.Services[si]
		for pi := range svc.Ports {
			port := &svc.Ports[pi]
			if err := t.port(b, ports, servers, svc, port); err != nil {
				b.errs = append(b.errs, fmt.Errorf("service %s/%s port %d%s: %w", svc.Namespace, svc.Name, port.Port, sources(port.Sources), err))
			}
		}
	}
	l7 := inboundL7Ports(in)
	pods, err := inboundEndpoints(in, l7)
	if err != nil {
		b.errs = append(b.errs, err)
	} else {
		f := t.fixed
		if f == nil || !slices.Equal(f.l7Ports, l7) || !slices.EqualFunc(f.pods, pods, func(a, b inboundEndpoint) bool { return a.equal(&b) }) {
			f = buildFixed(l7, pods, t.opts)
		}
		b.addFixed(f)
		t.fixed = f
	}
	b.s.Secrets = secrets(in, t.secrets)
	t.ports, t.servers, t.secrets = ports, servers, b.s.Secrets
	if err := errors.Join(b.errs...); err != nil {
		return nil, err
	}
	return b.s, nil
}

// port adds one Service port's resources, reusing those of an earlier translation if it can.
// ports and servers collect what this translation used.
func (t *Translator) port(b *builder, ports map[string]*portEntry, servers map[serverKey]*listenerv3.Listener, svc *ir.Service, port *ir.ServicePort) error {
	key, ok := t.portKey(svc, port)
	if ok {
		e := ports[key]
		if e == nil {
			e = t.ports[key]
		}
		if e != nil && e.current(b.clusters) {
			ports[key] = e
			for i, k := range e.out.serverKeys {
				if servers[k] == nil {
					servers[k] = e.out.serverListeners[i]
				}
			}
			return b.addPort(svc, e.out)
		}
	}
	e := &portEntry{out: &portResources{}}
	b.clusters.looked = &e.looked
	err := b.port(svc, port, e.out)
	b.clusters.looked = nil
	if err == nil && ok {
		ports[key] = e
	}
	return err
}

// current reports whether every cluster lookup of the entry's translation gets the same answer
// from clusters.
func (e *portEntry) current(clusters *clusterSet) bool {
	for _, l := range e.looked {
		if clusters.names[l.name] != l.found {
			return false
		}
	}
	return true
}

// portInputs is what a port's resources depend on besides the options and the cluster lookups.
// Every field of ir.ServicePort is encoded (none is tagged json:"-"), so equal keys mean equal
// inputs: the key is compared exactly, not by a hash that could collide.
type portInputs struct {
	Namespace string          `json:"n"`
	Name      string          `json:"s"`
	ClusterIP string          `json:"ip"`
	Port      *ir.ServicePort `json:"p"`
}

// portKey encodes the port's inputs; ok is false if they cannot be encoded (a NaN mirror
// percentage), and then the port is always translated afresh.
func (t *Translator) portKey(svc *ir.Service, port *ir.ServicePort) (key string, ok bool) {
	t.buf.Reset()
	err := json.NewEncoder(&t.buf).Encode(portInputs{Namespace: svc.Namespace, Name: svc.Name, ClusterIP: svc.ClusterIP, Port: port})
	if err != nil {
		return "", false
	}
	return t.buf.String(), true
}
