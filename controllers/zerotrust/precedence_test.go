package zerotrust

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// zt is a ZeroTrust created age minutes after t0; sel nil means no selector.
func zt(ns, name string, age int, sel *metav1.LabelSelector) *meshv1alpha1.ZeroTrust {
	return &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Minute))},
		Spec: meshv1alpha1.ZeroTrustSpec{Selector: sel, MTLS: meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
			Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: "ca"}}},
	}
}

func labelsSel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func pod(ns, name, sa string, kv ...string) Pod {
	return Pod{Namespace: ns, Name: name, ServiceAccount: sa, Labels: labelsSel(kv...).MatchLabels}
}

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func TestResolve(t *testing.T) {
	const opNS = "sluice-system"
	deleting := zt("shop", "going", 0, nil)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	tests := []struct {
		name  string
		zts   []*meshv1alpha1.ZeroTrust
		pods  []Pod
		cover map[string]string // pod name -> ZeroTrust name ("" = none)
		// conflicts: loser name -> winner name and the pods they tie for (comma-separated).
		conflicts map[string][2]string
	}{
		{
			name:  "nothing covers a pod without ZeroTrusts",
			pods:  []Pod{pod("shop", "a", "web")},
			cover: map[string]string{"a": ""},
		},
		{
			name:  "the namespace's ZeroTrust covers every pod of it, not another namespace's",
			zts:   []*meshv1alpha1.ZeroTrust{zt("shop", "ns", 0, nil)},
			pods:  []Pod{pod("shop", "a", "web"), pod("other", "b", "web")},
			cover: map[string]string{"a": "ns", "b": ""},
		},
		{
			name:  "an empty selector is namespace-wide too",
			zts:   []*meshv1alpha1.ZeroTrust{zt("shop", "ns", 0, &metav1.LabelSelector{})},
			pods:  []Pod{pod("shop", "a", "web")},
			cover: map[string]string{"a": "ns"},
		},
		{
			name: "a matching selector beats the namespace, which beats mesh-wide",
			zts: []*meshv1alpha1.ZeroTrust{
				zt(opNS, "mesh", 0, nil), zt("shop", "ns", 5, nil), zt("shop", "web", 9, labelsSel("app", "web")),
			},
			pods: []Pod{pod("shop", "w", "web", "app", "web"), pod("shop", "x", "x", "app", "x"), pod("other", "o", "o"), pod(opNS, "op", "op")},
			// A ZeroTrust that loses to a more specific one is not conflicted.
			cover: map[string]string{"w": "web", "x": "ns", "o": "mesh", "op": "mesh"},
		},
		{
			name: "a selector with more requirements is more specific",
			zts: []*meshv1alpha1.ZeroTrust{
				zt("shop", "app", 0, labelsSel("app", "web")), zt("shop", "app-v2", 9, labelsSel("app", "web", "version", "v2")),
			},
			pods:  []Pod{pod("shop", "v1", "web", "app", "web", "version", "v1"), pod("shop", "v2", "web", "app", "web", "version", "v2")},
			cover: map[string]string{"v1": "app", "v2": "app-v2"},
		},
		{
			name:      "two namespace-wide ZeroTrusts: the older wins, the newer is conflicted for every pod",
			zts:       []*meshv1alpha1.ZeroTrust{zt("shop", "new", 5, nil), zt("shop", "old", 0, nil)},
			pods:      []Pod{pod("shop", "b", "web"), pod("shop", "a", "web")},
			cover:     map[string]string{"a": "old", "b": "old"},
			conflicts: map[string][2]string{"new": {"old", "a,b"}},
		},
		{
			name:      "two namespace-wide ZeroTrusts conflict without pods",
			zts:       []*meshv1alpha1.ZeroTrust{zt("shop", "new", 5, nil), zt("shop", "old", 0, nil)},
			conflicts: map[string][2]string{"new": {"old", ""}},
		},
		{
			name:      "the same creation time: the first name wins",
			zts:       []*meshv1alpha1.ZeroTrust{zt("shop", "b", 0, nil), zt("shop", "a", 0, nil)},
			pods:      []Pod{pod("shop", "p", "web")},
			cover:     map[string]string{"p": "a"},
			conflicts: map[string][2]string{"b": {"a", "p"}},
		},
		{
			name:      "two selectors as specific tie only on the pods both match",
			zts:       []*meshv1alpha1.ZeroTrust{zt("shop", "by-app", 0, labelsSel("app", "web")), zt("shop", "by-tier", 3, labelsSel("tier", "front"))},
			pods:      []Pod{pod("shop", "both", "web", "app", "web", "tier", "front"), pod("shop", "tier-only", "web", "tier", "front")},
			cover:     map[string]string{"both": "by-app", "tier-only": "by-tier"},
			conflicts: map[string][2]string{"by-tier": {"by-app", "both"}},
		},
		{
			name:      "two mesh-wide ZeroTrusts",
			zts:       []*meshv1alpha1.ZeroTrust{zt(opNS, "mesh-b", 1, nil), zt(opNS, "mesh-a", 0, nil)},
			pods:      []Pod{pod("shop", "p", "web"), pod(opNS, "op", "op")},
			cover:     map[string]string{"p": "mesh-a", "op": "mesh-a"},
			conflicts: map[string][2]string{"mesh-b": {"mesh-a", "p,op"}}, // sorted by namespace, then name
		},
		{
			name:  "a selector in the operator's namespace is not mesh-wide",
			zts:   []*meshv1alpha1.ZeroTrust{zt(opNS, "sel", 0, labelsSel("app", "web"))},
			pods:  []Pod{pod("shop", "p", "web", "app", "web"), pod(opNS, "op", "op", "app", "web")},
			cover: map[string]string{"p": "", "op": "sel"},
		},
		{
			name:  "a ZeroTrust being deleted covers nothing",
			zts:   []*meshv1alpha1.ZeroTrust{deleting, zt("shop", "stays", 5, nil)},
			pods:  []Pod{pod("shop", "p", "web")},
			cover: map[string]string{"p": "stays"},
		},
		{
			name: "a selector that does not parse covers nothing",
			zts: []*meshv1alpha1.ZeroTrust{zt("shop", "bad", 0, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: "Bogus"}}})},
			pods:  []Pod{pod("shop", "p", "web", "app", "web")},
			cover: map[string]string{"p": ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Resolve(tc.zts, tc.pods, opNS)
			for _, p := range tc.pods {
				got := c.ByPod[p.Key()].ZeroTrust
				gotName := ""
				if got != nil {
					gotName = got.Name
				}
				if want := tc.cover[p.Name]; gotName != want {
					t.Errorf("pod %s: covered by %q, want %q", p.Name, gotName, want)
				}
				if Covering(p, tc.zts, opNS) != got {
					t.Errorf("pod %s: Covering disagrees with Resolve", p.Name)
				}
			}
			if len(c.Conflicts) != len(tc.conflicts) {
				t.Errorf("conflicts %v, want %v", c.Conflicts, tc.conflicts)
			}
			for k, conflict := range c.Conflicts {
				want, ok := tc.conflicts[k.Name]
				if !ok {
					t.Errorf("%s conflicted unexpectedly: %s", k, conflict.Message())
					continue
				}
				var pods []string
				for _, w := range conflict.Workloads {
					pods = append(pods, w.Name)
				}
				if conflict.Winner.Name != want[0] || strings.Join(pods, ",") != want[1] {
					t.Errorf("%s: conflict with %s on %v, want %s on %s", k, conflict.Winner, pods, want[0], want[1])
				}
				if !strings.Contains(conflict.Message(), conflict.Winner.String()) {
					t.Errorf("message %q does not name the winner", conflict.Message())
				}
			}
		})
	}
}

func TestConflictMessage(t *testing.T) {
	c := &Conflict{Winner: key("shop", "old"), Scope: ScopeNamespace}
	for i := range 7 {
		c.Workloads = append(c.Workloads, key("shop", string(rune('a'+i))))
	}
	want := "ZeroTrust shop/old is older and covers the same workloads at the namespace scope (7 pods: a, b, c, d, e, and 2 more), " +
		"so it applies to them instead of this one; merge the two or delete one"
	if got := c.Message(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
