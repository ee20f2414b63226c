package zerotrust

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The bundles do not parse the certificates: stand-in DER bytes name the roots.
var (
	oldRoot   = []byte("old root")
	newRoot   = []byte("new root")
	otherRoot = []byte("partner root")
)

func secret(ns, sa string, roots ...[]byte) IdentitySecret {
	return IdentitySecret{Namespace: ns, Name: CertificateName(sa), CA: pemOf(roots...)}
}

// summary is a bundle as root names, retained ones with their end.
func summary(bundles map[string]TrustBundle) map[string][]string {
	names := map[string]string{Fingerprint(oldRoot): "old", Fingerprint(newRoot): "new", Fingerprint(otherRoot): "partner"}
	out := map[string][]string{}
	for ns, b := range bundles {
		for _, der := range b.Roots {
			fp := Fingerprint(der)
			s := names[fp]
			if until, ok := b.RetainedUntil[fp]; ok {
				s += " until " + until.Sub(t0).String()
			}
			out[ns] = append(out[ns], s)
		}
		slices.Sort(out[ns])
	}
	return out
}

// A CA rotation, step by step: both roots while Secrets differ, the old one kept for the retention
// once the last Secret lost it, then dropped.
func TestTrustBundlesCARotation(t *testing.T) {
	shop := zt("shop", "ns", 0, nil)
	pods := []Pod{pod("shop", "a", "client"), pod("shop", "b", "ledger")}
	ids := Identities(Resolve([]*meshv1alpha1.ZeroTrust{shop}, pods, "sluice-system"), pods)
	const retention = 5 * time.Minute
	current := map[string]TrustBundle{}
	step := func(now time.Time, secrets ...IdentitySecret) (map[string][]string, time.Time) {
		t.Helper()
		got, next := TrustBundles(TrustBundleInput{Identities: ids, Secrets: secrets, Current: current, Now: now, Retention: retention})
		// What the reconciler writes is what it reads back next time.
		current = map[string]TrustBundle{}
		for ns, b := range got {
			current[ns] = TrustBundleOf(b.ConfigMap())
		}
		return summary(got), next
	}
	check := func(what string, got, want map[string][]string, next, wantNext time.Time) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
		if !next.Equal(wantNext) {
			t.Errorf("%s: next %v, want %v", what, next, wantNext)
		}
	}

	got, next := step(t0, secret("shop", "client", oldRoot), secret("shop", "ledger", oldRoot))
	check("before", got, map[string][]string{"shop": {"old"}}, next, time.Time{})

	got, next = step(t0.Add(time.Minute), secret("shop", "client", oldRoot), secret("shop", "ledger", newRoot))
	check("one Secret renewed by the new CA", got, map[string][]string{"shop": {"new", "old"}}, next, time.Time{})

	renewed := []IdentitySecret{secret("shop", "client", newRoot), secret("shop", "ledger", newRoot)}
	at := t0.Add(2*time.Minute + 300*time.Millisecond)
	until := t0.Add(7*time.Minute + time.Second) // rounded up to whole seconds
	got, next = step(at, renewed...)
	check("both renewed", got, map[string][]string{"shop": {"new", "old until 7m1s"}}, next, until)

	got, next = step(until.Add(-time.Second), renewed...)
	check("within the retention", got, map[string][]string{"shop": {"new", "old until 7m1s"}}, next, until)

	got, next = step(until, renewed...)
	check("after the retention", got, map[string][]string{"shop": {"new"}}, next, time.Time{})
}

func TestTrustBundles(t *testing.T) {
	partner := zt("partner", "ns", 0, nil)
	partner.Spec.Identity.TrustDomain = "partner.example"
	zts := []*meshv1alpha1.ZeroTrust{zt("shop", "ns", 0, nil), partner, zt("mixed", "ns", 0, nil),
		func() *meshv1alpha1.ZeroTrust {
			z := zt("mixed", "partner", 1, labelsSel("app", "p"))
			z.Spec.Identity.TrustDomain = "partner.example"
			return z
		}()}
	pods := []Pod{pod("shop", "a", "a"), pod("partner", "p", "p"), pod("mixed", "m", "m"), pod("mixed", "q", "q", "app", "p"), pod("plain", "x", "x")}
	ids := Identities(Resolve(zts, pods, "sluice-system"), pods)
	secrets := []IdentitySecret{
		secret("shop", "a", oldRoot),
		secret("shop", "gone", newRoot), // its Certificate is gone: it does not count
		secret("partner", "p", otherRoot),
		secret("plain", "x", newRoot), // no ZeroTrust covers plain
		{Namespace: "shop", Name: CertificateName("a"), CA: []byte("not PEM")},
	}
	current := map[string]TrustBundle{
		// A namespace whose identities went: its roots are retained, then the bundle goes.
		"left": {Namespace: "left", Roots: [][]byte{oldRoot}},
		"gone": {Namespace: "gone", Roots: [][]byte{oldRoot}, RetainedUntil: map[string]time.Time{Fingerprint(oldRoot): t0}},
	}
	got, next := TrustBundles(TrustBundleInput{Identities: ids, Secrets: secrets, Current: current, Now: t0, Retention: time.Minute})
	want := map[string][]string{
		"shop":    {"old"},
		"partner": {"partner"},
		"mixed":   {"old", "partner"}, // both trust domains its identities use
		"left":    {"old until 1m0s"},
	}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("bundles (-want +got):\n%s", diff)
	}
	if !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("next %v, want t0+1m", next)
	}
	if ns := slices.Sorted(maps.Keys(got)); !slices.Equal(ns, []string{"left", "mixed", "partner", "shop"}) {
		t.Errorf("namespaces %v", ns)
	}
}

// The ConfigMap holds the PEM roots in a stable order and the retention, and reads back the same.
func TestTrustBundleConfigMap(t *testing.T) {
	b := TrustBundle{Namespace: "shop", Roots: [][]byte{newRoot, oldRoot},
		RetainedUntil: map[string]time.Time{Fingerprint(oldRoot): t0.Add(time.Minute)}}
	cm := b.ConfigMap()
	if cm.Name != TrustBundleName || cm.Labels[LabelComponent] != ComponentTrustBundle || cm.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("ConfigMap %s labels %v", cm.Name, cm.Labels)
	}
	if got, want := cm.Data[TrustBundleKey], string(pemOf(newRoot, oldRoot)); got != want {
		t.Errorf("ca.crt:\n%s\nwant\n%s", got, want)
	}
	if diff := cmp.Diff(b, TrustBundleOf(cm)); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	cm.Annotations[AnnotationRetainedUntil] = "{not json"
	if back := TrustBundleOf(cm); back.RetainedUntil != nil || len(back.Roots) != 2 {
		t.Errorf("an unreadable retention should read as none, the roots kept: %+v", back)
	}
}

func TestTrusts(t *testing.T) {
	b := TrustBundle{Roots: [][]byte{newRoot, oldRoot}}
	for _, tc := range []struct {
		ca   []byte
		want bool
	}{{pemOf(oldRoot), true}, {pemOf(oldRoot, newRoot), true}, {pemOf(otherRoot), false}, {pemOf(oldRoot, otherRoot), false}, {nil, false}} {
		if got := Trusts(b, tc.ca); got != tc.want {
			t.Errorf("Trusts(%q) = %v, want %v", tc.ca, got, tc.want)
		}
	}
}
