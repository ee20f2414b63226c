package translate

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice-mesh/sluice/xds/ir"
)

// endpoint is an ir.Endpoint with the labels of its pod, for subset selection.
type endpoint struct {
	ir.Endpoint
	labels   map[string]string
	identity string      // the pod's SPIFFE ID when a ZeroTrust covers it
	pod      *corev1.Pod // nil when the endpoint names no known pod
}

// endpointsOf returns the endpoints of one Service port from the Service's EndpointSlices, with
// each endpoint's pod labels. Duplicates (an address in two slices) are kept once.
func endpointsOf(svc *corev1.Service, port corev1.ServicePort, slices []*discoveryv1.EndpointSlice, pods map[podKey]*corev1.Pod, security func(*corev1.Pod) podSecurity) []endpoint {
	seen := map[ir.Endpoint]bool{}
	var out []endpoint
	for _, slice := range slices {
		if slice.Namespace != svc.Namespace || slice.Labels[discoveryv1.LabelServiceName] != svc.Name {
			continue
		}
		if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		targetPort, ok := slicePort(slice, port)
		if !ok {
			continue
		}
		for _, ep := range slice.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			var pod *corev1.Pod
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				pod = pods[podKey{ep.TargetRef.Namespace, ep.TargetRef.Name}]
			}
			e := endpoint{Endpoint: ir.Endpoint{
				Address: ep.Addresses[0],
				Port:    targetPort,
				// A nil ready condition means ready (EndpointSlice API contract).
				Ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready,
			}}
			if pod != nil {
				e.pod = pod
				e.labels = pod.Labels
				e.Workload = workloadName(pod)
				e.Version = pod.Labels["version"]
				sec := security(pod)
				e.MTLS, e.identity = sec.mode, sec.identity
			}
			if seen[e.Endpoint] {
				continue
			}
			seen[e.Endpoint] = true
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// slicePort finds the slice's port for a Service port: by name, which is how EndpointSlices
// identify Service ports.
func slicePort(slice *discoveryv1.EndpointSlice, port corev1.ServicePort) (uint32, bool) {
	for _, p := range slice.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name == port.Name && p.Port != nil && *p.Port > 0 {
			return uint32(*p.Port), true
		}
	}
	return 0, false
}

// subsetOf returns the endpoints whose pod labels match sel.
func subsetOf(name string, eps []endpoint, sel labels.Selector) ir.Subset {
	s := ir.Subset{Name: name, Endpoints: []ir.Endpoint{}}
	for _, e := range eps {
		if e.labels != nil && sel.Matches(labels.Set(e.labels)) {
			s.Endpoints = append(s.Endpoints, e.Endpoint)
		}
	}
	return s
}

func allEndpoints(eps []endpoint) ir.Subset {
	s := ir.Subset{Name: ir.AllEndpoints, Endpoints: []ir.Endpoint{}}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, e.Endpoint)
	}
	return s
}

type podKey struct{ namespace, name string }

// workloadName is the pod's app label (app.kubernetes.io/name, then app), else its owner's name.
func workloadName(pod *corev1.Pod) string {
	for _, key := range []string{"app.kubernetes.io/name", "app"} {
		if v := pod.Labels[key]; v != "" {
			return v
		}
	}
	if len(pod.OwnerReferences) > 0 {
		return pod.OwnerReferences[0].Name
	}
	return pod.Name
}
