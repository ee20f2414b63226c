// Package translate turns the cluster's objects (resources.Resources) into the mesh's IR. It is
// pure: no I/O, no clock, and the same Resources always give the same IR and Problems.
package translate

import (
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/resources"
)

// Translate builds the IR. Problems name the objects whose settings could not be honoured; what
// they ask for is left out and everything else is still translated.
func Translate(res *resources.Resources) (*ir.IR, Problems) {
	var problems Problems
	pods := map[podKey]*corev1.Pod{}
	for _, p := range res.Pods {
		pods[podKey{p.Namespace, p.Name}] = p
	}
	services := map[serviceKey]*corev1.Service{}
	for _, s := range res.Services {
		services[serviceKey{s.Namespace, s.Name}] = s
	}
	security := securityOf(res.ZeroTrusts, res.Pods, res.OperatorNamespace)
	members := membersOf(res.Services, res.EndpointSlices, pods)
	policies := selectPolicies(res.TrafficPolicies, services, &problems)
	rollouts := selectRollouts(res.Rollouts, services, &problems)
	for _, tp := range policies {
		grpcLimits(tp, &problems)
	}

	out := &ir.IR{}
	for _, svc := range sortedServices(res.Services) {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		key := serviceKey{svc.Namespace, svc.Name}
		s := ir.Service{Namespace: svc.Namespace, Name: svc.Name}
		if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			s.ClusterIP = ip
		}
		for _, port := range svc.Spec.Ports {
			protocol, meshed := protocolOf(port)
			if !meshed {
				continue
			}
			eps := endpointsOf(svc, port, res.EndpointSlices, pods, security)
			for i := range eps {
				// Only a server that takes mTLS knows its callers' identities. An Envoy sidecar
				// does under PERMISSIVE too (a plain-text caller matches no principal); a
				// PERMISSIVE proxyless server serves plain text and ignores the rules (docs/xds.md).
				if e := &eps[i]; e.pod != nil && takesMTLS(e.MTLS) {
					e.Identity = e.identity
					e.Authorization = authorizationOf(e.pod, e.Port, security(e.pod).zt, members[e.pod], services)
				}
			}
			p := ir.ServicePort{
				Name:       port.Name,
				Port:       uint32(port.Port),
				Protocol:   protocol,
				Subsets:    []ir.Subset{allEndpoints(eps)},
				Identities: identitiesOf(eps),
			}
			routes := []ir.Route{defaultRoute()}
			tp := policies[key]
			if protocol == ir.ProtocolTCP {
				tp = nil
			}
			if tp != nil {
				routes = applyPolicy(&p, routes, tp, eps, services, &problems)
			}
			if ro := rollouts[key]; ro != nil && uint32(ro.Spec.Service.Port) == p.Port {
				routes = applyRollout(&p, routes, ro, tp, eps, &problems)
			}
			p.Routes = routes
			sort.Slice(p.Subsets, func(i, j int) bool { return p.Subsets[i].Name < p.Subsets[j].Name })
			s.Ports = append(s.Ports, p)
		}
		sort.Slice(s.Ports, func(i, j int) bool { return s.Ports[i].Port < s.Ports[j].Port })
		out.Services = append(out.Services, s)
	}
	for key, ro := range rollouts {
		if !hasPort(services[key], ro.Spec.Service.Port) {
			problems.add(refOf("Rollout", ro.Namespace, ro.Name), "PortNotFound", "spec.service.port",
				"Service %s/%s has no port %d; set spec.service.port to one of its ports", ro.Namespace, ro.Spec.Service.Name, ro.Spec.Service.Port)
		}
	}
	out.Identities, out.TrustBundles = identitiesAndBundles(res.Pods, res.Secrets, res.TrustBundles, security)
	problems.sort()
	return out, problems
}

type serviceKey struct{ namespace, name string }

func defaultRoute() ir.Route {
	return ir.Route{Name: ir.DefaultRouteName, Destinations: []ir.Destination{{Subset: ir.AllEndpoints, Weight: 100}}}
}

func sortedServices(in []*corev1.Service) []*corev1.Service {
	out := append([]*corev1.Service(nil), in...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func hasPort(svc *corev1.Service, port int32) bool {
	if svc == nil {
		return false
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

func refOf(kind, namespace, name string) ir.ObjectRef {
	return ir.ObjectRef{Kind: kind, Namespace: namespace, Name: name}
}
