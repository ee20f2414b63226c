package translate

import (
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// podSecurity is what the ZeroTrust covering a pod makes of it: its mTLS mode and SPIFFE ID.
type podSecurity struct {
	mode     ir.MTLSMode
	identity string
	zt       *meshv1alpha1.ZeroTrust // the covering ZeroTrust, nil when none covers the pod
}

// securityOf returns the security of each pod. The covering ZeroTrusts come from the same
// precedence the identity controller issues certificates by (controllers/zerotrust.Resolve:
// workload selector, then namespace, then mesh-wide in the operator's namespace; the older wins a
// tie), so a pod's mTLS mode and its certificate always come from one ZeroTrust.
func securityOf(zts []*meshv1alpha1.ZeroTrust, pods []*corev1.Pod, operatorNamespace string) func(*corev1.Pod) podSecurity {
	in := make([]zerotrust.Pod, 0, len(pods))
	for _, p := range pods {
		in = append(in, zerotrust.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName})
	}
	coverage := zerotrust.Resolve(zts, in, operatorNamespace)
	memo := map[*corev1.Pod]podSecurity{}
	return func(pod *corev1.Pod) podSecurity {
		if sec, ok := memo[pod]; ok {
			return sec
		}
		var sec podSecurity
		if zt := coverage.ByPod[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}].ZeroTrust; zt != nil {
			sec.zt = zt
			sec.mode = ir.MTLSMode(zt.Spec.MTLS.Mode)
			if sec.mode == "" {
				sec.mode = ir.MTLSStrict // the API's default
			}
			sec.identity = zerotrust.SPIFFEID(zerotrust.TrustDomain(zt), pod.Namespace, serviceAccountOf(pod))
		}
		memo[pod] = sec
		return sec
	}
}

// serviceAccountOf is the pod's service account; the API server sets "default" when a pod names
// none, so an empty one (a pod from a YAML fixture) means that too.
func serviceAccountOf(pod *corev1.Pod) string {
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		return sa
	}
	return "default"
}

// identitiesOf lists the SPIFFE IDs of the endpoints that take mTLS, sorted, each once.
func identitiesOf(eps []endpoint) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range eps {
		if e.identity == "" || seen[e.identity] || !takesMTLS(e.MTLS) {
			continue
		}
		seen[e.identity] = true
		out = append(out, e.identity)
	}
	sort.Strings(out)
	return out
}

// takesMTLS reports whether a server in mode accepts mutual TLS.
func takesMTLS(mode ir.MTLSMode) bool { return mode == ir.MTLSStrict || mode == ir.MTLSPermissive }

// member says that a pod serves a Service port: the Service's EndpointSlices list it on targetPort.
type member struct {
	svc        *corev1.Service
	port       int32 // the Service port
	targetPort uint32
}

// membersOf lists, for each pod, the Service ports whose EndpointSlices name it.
func membersOf(services []*corev1.Service, slices []*discoveryv1.EndpointSlice, pods map[podKey]*corev1.Pod) map[*corev1.Pod][]member {
	bySvc := map[serviceKey][]*discoveryv1.EndpointSlice{}
	for _, slice := range slices {
		k := serviceKey{slice.Namespace, slice.Labels[discoveryv1.LabelServiceName]}
		bySvc[k] = append(bySvc[k], slice)
	}
	out := map[*corev1.Pod][]member{}
	for _, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		for _, port := range svc.Spec.Ports {
			for _, slice := range bySvc[serviceKey{svc.Namespace, svc.Name}] {
				targetPort, ok := slicePort(slice, port)
				if !ok {
					continue
				}
				for _, ep := range slice.Endpoints {
					if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
						continue
					}
					if pod := pods[podKey{ep.TargetRef.Namespace, ep.TargetRef.Name}]; pod != nil {
						out[pod] = append(out[pod], member{svc: svc, port: port.Port, targetPort: targetPort})
					}
				}
			}
		}
	}
	return out
}

// authorizationOf compiles the rules of the ZeroTrust covering a pod for the pod's server on
// targetPort. A rule is for the pod when its Service (to.service, in the ZeroTrust's namespace)
// selects the pod: its EndpointSlices list the pod, or its selector matches the pod's labels. Once
// one rule is for the pod, every server of the pod is default deny (nil is returned only when none
// is); the server on targetPort gets the rules whose ports include a Service port that targets it
// (all of them when to.ports is empty).
func authorizationOf(pod *corev1.Pod, targetPort uint32, zt *meshv1alpha1.ZeroTrust, members []member, services map[serviceKey]*corev1.Service) *ir.Authorization {
	if zt == nil || len(zt.Spec.Rules) == 0 {
		return nil
	}
	forPod := false
	policies := []ir.AuthorizationPolicy{}
	for i := range zt.Spec.Rules {
		rule := &zt.Spec.Rules[i]
		svc := services[serviceKey{zt.Namespace, rule.To.Service}]
		if svc == nil || !selects(svc, pod, members) {
			continue
		}
		forPod = true
		if servesPort(svc, rule.To.Ports, targetPort, members) {
			policies = append(policies, policyOf(rule, zt))
		}
	}
	if !forPod {
		return nil
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	return &ir.Authorization{Policies: policies, Source: refOf("ZeroTrust", zt.Namespace, zt.Name)}
}

// selects reports whether svc selects pod: by its EndpointSlices or by its selector.
func selects(svc *corev1.Service, pod *corev1.Pod, members []member) bool {
	for _, m := range members {
		if m.svc == svc {
			return true
		}
	}
	return svc.Namespace == pod.Namespace && len(svc.Spec.Selector) > 0 &&
		labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels))
}

// servesPort reports whether one of svc's ports in ports (any when empty) reaches the pod on
// targetPort.
func servesPort(svc *corev1.Service, ports []int32, targetPort uint32, members []member) bool {
	for _, m := range members {
		if m.svc == svc && m.targetPort == targetPort && (len(ports) == 0 || slices.Contains(ports, m.port)) {
			return true
		}
	}
	return false
}

// pathMatch is a rule's path: *suffix, /prefix* or /exact.
func pathMatch(path string) ir.StringMatch {
	switch {
	case strings.HasPrefix(path, "*"):
		return ir.StringMatch{Suffix: path[1:]}
	case strings.HasSuffix(path, "*"):
		return ir.StringMatch{Prefix: strings.TrimSuffix(path, "*")}
	default:
		return ir.StringMatch{Exact: path}
	}
}

// policyOf compiles one rule. Callers: a service account is the exact SPIFFE ID
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> (namespace defaults to the
// ZeroTrust's), a namespace alone the prefix spiffe://<trustDomain>/ns/<namespace>/sa/, a
// principal itself. Paths: /exact, /prefix* and *suffix; "*" alone is any path.
func policyOf(rule *meshv1alpha1.AuthorizationRule, zt *meshv1alpha1.ZeroTrust) ir.AuthorizationPolicy {
	td := zerotrust.TrustDomain(zt)
	p := ir.AuthorizationPolicy{Name: rule.Name, Principals: []ir.StringMatch{}}
	seen := map[ir.StringMatch]bool{}
	for _, from := range rule.From {
		var m ir.StringMatch
		switch {
		case from.Principal != "":
			m.Exact = from.Principal
		case from.ServiceAccount != "":
			ns := from.Namespace
			if ns == "" {
				ns = zt.Namespace
			}
			m.Exact = zerotrust.SPIFFEID(td, ns, from.ServiceAccount)
		case from.Namespace != "":
			m.Prefix = zerotrust.SPIFFEID(td, from.Namespace, "")
		default:
			continue // the API refuses such an entry
		}
		if !seen[m] {
			seen[m] = true
			p.Principals = append(p.Principals, m)
		}
	}
	for _, path := range rule.To.Paths {
		if path == "*" {
			p.Paths = nil // any path
			break
		}
		p.Paths = append(p.Paths, pathMatch(path))
	}
	for _, method := range rule.To.Methods {
		p.Methods = append(p.Methods, string(method))
	}
	return p
}
