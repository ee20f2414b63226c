package translate

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// DefaultTrustDomain is the SPIFFE trust domain of a ZeroTrust that names none.
const DefaultTrustDomain = "cluster.local"

// CoveringZeroTrust is the ZeroTrust that decides a pod's mTLS mode, among the ZeroTrusts of the
// pod's namespace: one whose non-empty selector matches the pod's labels beats one with an empty
// (or no) selector, which covers the whole namespace; nil if none covers the pod. Ties go to the
// oldest, then the first by name, so the answer does not depend on list order. Selectors that do
// not parse cover nothing.
//
// It is deliberately small and pure: the identity controller (controllers/zerotrust*) owns
// precedence (mesh-wide ZeroTrusts in the operator's namespace included) and reports conflicts;
// this function is the one place to swap for its resolution.
func CoveringZeroTrust(pod *corev1.Pod, zts []*meshv1alpha1.ZeroTrust) *meshv1alpha1.ZeroTrust {
	var best *meshv1alpha1.ZeroTrust
	bestRank := 0
	for _, zt := range zts {
		if zt.Namespace != pod.Namespace {
			continue
		}
		rank := 1 // namespace-wide
		if sel := zt.Spec.Selector; sel != nil && (len(sel.MatchLabels) > 0 || len(sel.MatchExpressions) > 0) {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil || !s.Matches(labels.Set(pod.Labels)) {
				continue
			}
			rank = 2
		}
		if rank > bestRank || (rank == bestRank && older(zt, best)) {
			best, bestRank = zt, rank
		}
	}
	return best
}

func older(a, b *meshv1alpha1.ZeroTrust) bool {
	ta, tb := a.CreationTimestamp, b.CreationTimestamp
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.Name < b.Name
}

// podSecurity is what the ZeroTrust covering a pod makes of it: its mTLS mode and SPIFFE ID.
type podSecurity struct {
	mode     ir.MTLSMode
	identity string
}

// securityOf returns the security of each pod, computed once per pod.
func securityOf(zts []*meshv1alpha1.ZeroTrust) func(*corev1.Pod) podSecurity {
	byNamespace := map[string][]*meshv1alpha1.ZeroTrust{}
	for _, zt := range zts {
		byNamespace[zt.Namespace] = append(byNamespace[zt.Namespace], zt)
	}
	memo := map[*corev1.Pod]podSecurity{}
	return func(pod *corev1.Pod) podSecurity {
		if sec, ok := memo[pod]; ok {
			return sec
		}
		var sec podSecurity
		if zt := CoveringZeroTrust(pod, byNamespace[pod.Namespace]); zt != nil {
			sec.mode = ir.MTLSMode(zt.Spec.MTLS.Mode)
			if sec.mode == "" {
				sec.mode = ir.MTLSStrict // the API's default
			}
			trustDomain := DefaultTrustDomain
			if id := zt.Spec.Identity; id != nil && id.TrustDomain != "" {
				trustDomain = id.TrustDomain
			}
			sec.identity = SPIFFEID(trustDomain, pod.Namespace, serviceAccountOf(pod))
		}
		memo[pod] = sec
		return sec
	}
}

// SPIFFEID is the identity of a service account: spiffe://<trustDomain>/ns/<namespace>/sa/<name>.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, namespace, serviceAccount)
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
