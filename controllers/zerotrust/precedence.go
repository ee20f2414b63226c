package zerotrust

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Pod is what precedence needs of a pod.
type Pod struct {
	Namespace string
	Name      string
	Labels    map[string]string
	// ServiceAccount is spec.serviceAccountName; empty means "default".
	ServiceAccount string
}

// Key is the pod's namespace and name.
func (p Pod) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
}

// ServiceAccountName is the pod's service account, "default" when the pod names none.
func (p Pod) ServiceAccountName() string {
	if p.ServiceAccount == "" {
		return "default"
	}
	return p.ServiceAccount
}

// Scope is how a ZeroTrust reaches a pod, from the least specific to the most.
type Scope int

// The scopes, in increasing precedence.
const (
	// ScopeMesh: a ZeroTrust with an empty selector in the operator's namespace, for a pod of
	// another namespace.
	ScopeMesh Scope = iota + 1
	// ScopeNamespace: a ZeroTrust with an empty (or no) selector in the pod's namespace.
	ScopeNamespace
	// ScopeWorkload: a ZeroTrust in the pod's namespace whose non-empty selector matches the pod.
	ScopeWorkload
)

func (s Scope) String() string {
	switch s {
	case ScopeMesh:
		return "mesh-wide"
	case ScopeNamespace:
		return "namespace"
	case ScopeWorkload:
		return "workload selector"
	}
	return "none"
}

// rank orders the ZeroTrusts that reach one pod: the higher scope wins, then, between two
// selectors, the one with more requirements (matchLabels entries plus matchExpressions).
type rank struct {
	scope        Scope
	requirements int
}

func (r rank) above(o rank) bool {
	if r.scope != o.scope {
		return r.scope > o.scope
	}
	return r.requirements > o.requirements
}

// Cover is the ZeroTrust that covers a pod and how it reaches it.
type Cover struct {
	ZeroTrust *meshv1alpha1.ZeroTrust
	Scope     Scope
	// Requirements is the number of the selector's requirements (workload scope only).
	Requirements int
}

// Conflict says that a ZeroTrust lost a tie (same scope and, for selectors, as many requirements)
// to an older one.
type Conflict struct {
	// Winner is the older ZeroTrust that covers the workloads instead.
	Winner types.NamespacedName
	// Scope is the level of the tie.
	Scope Scope
	// Workloads are the pods the two tie for, sorted; empty when two namespace-wide (or mesh-wide)
	// ZeroTrusts tie in a namespace without pods.
	Workloads []types.NamespacedName
}

// Message says what to do about the conflict, for the Accepted condition.
func (c *Conflict) Message() string {
	what := "the same " + c.Scope.String() + " scope"
	if len(c.Workloads) > 0 {
		names := make([]string, 0, 5)
		for i, w := range c.Workloads {
			if i == 5 {
				names = append(names, fmt.Sprintf("and %d more", len(c.Workloads)-5))
				break
			}
			names = append(names, w.Name)
		}
		what = fmt.Sprintf("the same workloads at the %s scope (%d pods: %s)", c.Scope, len(c.Workloads), joinComma(names))
	}
	return fmt.Sprintf("ZeroTrust %s is older and covers %s, so it applies to them instead of this one; merge the two or delete one",
		c.Winner, what)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// Coverage is the outcome of Resolve.
type Coverage struct {
	// ByPod is the ZeroTrust covering each covered pod; pods no ZeroTrust reaches are absent.
	ByPod map[types.NamespacedName]Cover
	// Workloads are the pods each ZeroTrust covers, sorted; ZeroTrusts covering none are absent.
	Workloads map[types.NamespacedName][]types.NamespacedName
	// Conflicts are the ZeroTrusts that lost a tie, with the winner.
	Conflicts map[types.NamespacedName]*Conflict
	// InvalidSelectors are the ZeroTrusts whose selector does not parse; they cover nothing.
	InvalidSelectors map[types.NamespacedName]error
}

// KeyOf is the namespace and name of a ZeroTrust.
func KeyOf(zt *meshv1alpha1.ZeroTrust) types.NamespacedName {
	return types.NamespacedName{Namespace: zt.Namespace, Name: zt.Name}
}

// Older says whether a was created before b (then by namespace and name), the tie-break of
// ZeroTrusts at the same scope.
func Older(a, b *meshv1alpha1.ZeroTrust) bool {
	ta, tb := a.CreationTimestamp, b.CreationTimestamp
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// namespaceWide says whether the ZeroTrust's selector is empty or omitted.
func namespaceWide(zt *meshv1alpha1.ZeroTrust) bool {
	sel := zt.Spec.Selector
	return sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0)
}

type candidate struct {
	zt       *meshv1alpha1.ZeroTrust
	selector labels.Selector // nil for namespace-wide
	reqs     int
}

// Resolve decides, for each pod, the ZeroTrust that covers it:
//
//  1. of the ZeroTrusts in the pod's namespace whose non-empty selector matches the pod, the one
//     with the most requirements;
//  2. else a ZeroTrust with an empty or omitted selector in the pod's namespace;
//  3. else a ZeroTrust with an empty or omitted selector in operatorNamespace (mesh-wide).
//
// Of two at the same level (and, for selectors, with as many requirements) the older wins
// (creationTimestamp, then name) and the newer is reported in Conflicts, naming the winner and the
// pods they tie for. Two namespace-wide ZeroTrusts of one namespace conflict even when it has no
// pods. A ZeroTrust being deleted covers nothing.
func Resolve(zts []*meshv1alpha1.ZeroTrust, pods []Pod, operatorNamespace string) Coverage {
	c := Coverage{
		ByPod:            map[types.NamespacedName]Cover{},
		Workloads:        map[types.NamespacedName][]types.NamespacedName{},
		Conflicts:        map[types.NamespacedName]*Conflict{},
		InvalidSelectors: map[types.NamespacedName]error{},
	}
	sorted := make([]*meshv1alpha1.ZeroTrust, 0, len(zts))
	for _, zt := range zts {
		if zt.DeletionTimestamp.IsZero() {
			sorted = append(sorted, zt)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return Older(sorted[i], sorted[j]) })

	byNamespace := map[string][]candidate{}
	wide := map[string]*meshv1alpha1.ZeroTrust{} // the oldest namespace-wide ZeroTrust per namespace
	for _, zt := range sorted {
		cand := candidate{zt: zt}
		if namespaceWide(zt) {
			if winner, ok := wide[zt.Namespace]; ok {
				scope := ScopeNamespace
				if zt.Namespace == operatorNamespace {
					scope = ScopeMesh
				}
				c.Conflicts[KeyOf(zt)] = &Conflict{Winner: KeyOf(winner), Scope: scope}
				continue // it never covers anything
			}
			wide[zt.Namespace] = zt
		} else {
			sel, err := metav1.LabelSelectorAsSelector(zt.Spec.Selector)
			if err != nil {
				c.InvalidSelectors[KeyOf(zt)] = err
				continue
			}
			cand.selector = sel
			cand.reqs = len(zt.Spec.Selector.MatchLabels) + len(zt.Spec.Selector.MatchExpressions)
		}
		byNamespace[zt.Namespace] = append(byNamespace[zt.Namespace], cand)
	}

	sortedPods := append([]Pod(nil), pods...)
	sort.Slice(sortedPods, func(i, j int) bool {
		a, b := sortedPods[i], sortedPods[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for _, pod := range sortedPods {
		var best *candidate
		var bestRank rank
		var ties []*meshv1alpha1.ZeroTrust
		consider := func(cand *candidate, r rank) {
			switch {
			case best == nil || r.above(bestRank):
				best, bestRank, ties = cand, r, nil
			case !bestRank.above(r):
				// The same rank; candidates come oldest first, so best stays the older one.
				ties = append(ties, cand.zt)
			}
		}
		for i := range byNamespace[pod.Namespace] {
			cand := &byNamespace[pod.Namespace][i]
			if cand.selector == nil {
				consider(cand, rank{scope: ScopeNamespace})
			} else if cand.selector.Matches(labels.Set(pod.Labels)) {
				consider(cand, rank{scope: ScopeWorkload, requirements: cand.reqs})
			}
		}
		if best == nil && pod.Namespace != operatorNamespace {
			for i := range byNamespace[operatorNamespace] {
				if cand := &byNamespace[operatorNamespace][i]; cand.selector == nil {
					consider(cand, rank{scope: ScopeMesh})
				}
			}
		}
		if best == nil {
			continue
		}
		key := pod.Key()
		c.ByPod[key] = Cover{ZeroTrust: best.zt, Scope: bestRank.scope, Requirements: bestRank.requirements}
		c.Workloads[KeyOf(best.zt)] = append(c.Workloads[KeyOf(best.zt)], key)
		for _, loser := range ties {
			conflict := c.Conflicts[KeyOf(loser)]
			if conflict == nil {
				conflict = &Conflict{Winner: KeyOf(best.zt), Scope: bestRank.scope}
				c.Conflicts[KeyOf(loser)] = conflict
			}
			if conflict.Winner == KeyOf(best.zt) {
				conflict.Workloads = append(conflict.Workloads, key)
			}
		}
	}
	// Namespace-wide losers tie for every pod the winner covers at that scope.
	for loser, conflict := range c.Conflicts {
		if conflict.Scope == ScopeWorkload || len(conflict.Workloads) > 0 {
			continue
		}
		for _, pod := range c.Workloads[conflict.Winner] {
			if cov := c.ByPod[pod]; cov.Scope == conflict.Scope || (conflict.Scope == ScopeMesh && cov.Scope == ScopeNamespace) {
				c.Conflicts[loser].Workloads = append(c.Conflicts[loser].Workloads, pod)
			}
		}
	}
	return c
}

// Covering is the ZeroTrust that covers one pod (see Resolve), nil when none does.
func Covering(pod Pod, zts []*meshv1alpha1.ZeroTrust, operatorNamespace string) *meshv1alpha1.ZeroTrust {
	return Resolve(zts, []Pod{pod}, operatorNamespace).ByPod[pod.Key()].ZeroTrust
}
