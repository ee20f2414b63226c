package translate

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// podSecurity is what the ZeroTrust covering a pod makes of it: its mTLS mode and SPIFFE ID.
type podSecurity struct {
	mode     ir.MTLSMode
	identity string
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
		if e.identity == "" || seen[e.identity] || (e.MTLS != ir.MTLSStrict && e.MTLS != ir.MTLSPermissive) {
			continue
		}
		seen[e.identity] = true
		out = append(out, e.identity)
	}
	sort.Strings(out)
	return out
}
