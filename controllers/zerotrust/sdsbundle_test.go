package zerotrust

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
)

// Envoy's bundle of a trust domain: the roots of its Secrets in use plus the roots the namespaces
// using it still hold in their ConfigMaps, marked retained by the leader or not yet.
func TestTrustDomainBundles(t *testing.T) {
	key := func(ns, sa string) types.NamespacedName {
		return types.NamespacedName{Namespace: ns, Name: CertificateName(sa)}
	}
	roots := TrustDomainRoots([]IdentitySecret{
		secret("shop", "a", newRoot),
		secret("web", "w", newRoot),
		secret("partner", "p", otherRoot),
		secret("stale", "s", oldRoot), // not in use
	}, map[types.NamespacedName]string{
		key("shop", "a"): "cluster.local", key("web", "w"): "cluster.local", key("partner", "p"): "partner.example",
	})
	uses := map[string]map[string]bool{
		"shop":    {"cluster.local": true},
		"web":     {"cluster.local": true},
		"partner": {"partner.example": true},
		"mixed":   {"cluster.local": true, "partner.example": true},
	}
	held := map[string]TrustBundle{
		// Retained by the leader after the rotation.
		"shop": {Namespace: "shop", Roots: [][]byte{oldRoot, newRoot}, RetainedUntil: map[string]time.Time{Fingerprint(oldRoot): t0}},
		// Not rewritten yet since the Secret changed: the old root stays all the same.
		"web": {Namespace: "web", Roots: [][]byte{oldRoot}},
		// A namespace no identity uses any more adds nothing.
		"left": {Namespace: "left", Roots: [][]byte{[]byte("left root")}},
	}
	names := map[string]string{Fingerprint(oldRoot): "old", Fingerprint(newRoot): "new", Fingerprint(otherRoot): "partner"}
	summarize := func(bundles map[string]Roots) map[string][]string {
		out := map[string][]string{}
		for td, r := range bundles {
			for fp := range r {
				out[td] = append(out[td], names[fp])
			}
			slices.Sort(out[td])
		}
		return out
	}
	want := map[string][]string{"cluster.local": {"new", "old"}, "partner.example": {"partner"}}
	if diff := cmp.Diff(want, summarize(TrustDomainBundles(roots, uses, held))); diff != "" {
		t.Errorf("bundles (-want +got):\n%s", diff)
	}

	// A namespace using two trust domains cannot say which one its retained root was for.
	held["mixed"] = TrustBundle{Namespace: "mixed", Roots: [][]byte{newRoot, otherRoot, oldRoot}}
	delete(held, "shop")
	delete(held, "web")
	want = map[string][]string{"cluster.local": {"new", "old"}, "partner.example": {"old", "partner"}}
	if diff := cmp.Diff(want, summarize(TrustDomainBundles(roots, uses, held))); diff != "" {
		t.Errorf("mixed namespace (-want +got):\n%s", diff)
	}
	// The trust domains' roots are not changed.
	if len(roots["cluster.local"]) != 1 {
		t.Errorf("TrustDomainBundles changed its input: %d roots", len(roots["cluster.local"]))
	}
}
