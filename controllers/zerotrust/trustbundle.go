package zerotrust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The trust bundle ConfigMap: one per namespace with identities, mounted by proxyless gRPC
// workloads as their file_watcher's ca_certificate_file.
const (
	// TrustBundleName is the ConfigMap's name in every namespace that has identities.
	TrustBundleName = "sluice-trust-bundle"
	// TrustBundleKey holds the PEM CA certificates.
	TrustBundleKey = "ca.crt"
	// LabelComponent marks the ConfigMaps Sluice writes (the operator's cache holds only those).
	LabelComponent = "mesh.sluice.dev/component"
	// ComponentTrustBundle is LabelComponent's value on trust bundles.
	ComponentTrustBundle = "trust-bundle"
	// AnnotationRetainedUntil holds, as JSON, the roots of the bundle that no identity Secret
	// carries any more: SHA-256 fingerprint (hex, of the DER) -> RFC 3339 time until which they
	// stay trusted.
	AnnotationRetainedUntil = "mesh.sluice.dev/retained-until"
)

// DefaultTrustBundleRetention is how long a root stays in the bundles once no identity Secret
// carries it. The kubelet refreshes Secret and ConfigMap volumes independently (each within its
// sync period, about a minute by default, plus its cache's TTL), so a pod may still present a
// certificate from the old root after the ConfigMap dropped it.
const DefaultTrustBundleRetention = 5 * time.Minute

// IdentitySecret is what the trust bundle needs of an identity Secret: its key and ca.crt.
type IdentitySecret struct {
	Namespace, Name string
	// CA is the Secret's ca.crt: one or more PEM certificates (cert-manager's CA issuer writes
	// the issuing CA's certificate).
	CA []byte
}

// TrustBundle is a namespace's trust bundle.
type TrustBundle struct {
	Namespace string
	// Roots are the CA certificates (DER), sorted by fingerprint.
	Roots [][]byte
	// RetainedUntil holds the roots no identity Secret carries any more (by Fingerprint) and the
	// time they leave the bundle.
	RetainedUntil map[string]time.Time
}

// TrustBundleInput is what the bundles are derived from.
type TrustBundleInput struct {
	// Identities in use (Identities): they say which namespaces need a bundle, which trust domain
	// each Secret belongs to, and which Secrets count (a Secret whose Certificate is gone is
	// ignored, so a stale Secret cannot keep an old root trusted forever).
	Identities []Identity
	Secrets    []IdentitySecret
	// Current are the bundles as the ConfigMaps hold them now, by namespace.
	Current   map[string]TrustBundle
	Now       time.Time
	Retention time.Duration
}

// TrustBundles decides every namespace's bundle: the distinct CA certificates of the identity
// Secrets of every trust domain its identities use, plus the roots it held that no such Secret
// carries any more, until their retention ends. A namespace whose bundle would be empty is left
// out (its ConfigMap goes). next is the earliest retention end (zero when none): the bundles must
// be decided again then.
func TrustBundles(in TrustBundleInput) (bundles map[string]TrustBundle, next time.Time) {
	trustDomainOf := map[types.NamespacedName]string{}
	needs := map[string]map[string]bool{} // namespace -> trust domains
	for _, id := range in.Identities {
		td := TrustDomain(id.ZeroTrust)
		trustDomainOf[id.Key()] = td
		if needs[id.Namespace] == nil {
			needs[id.Namespace] = map[string]bool{}
		}
		needs[id.Namespace][td] = true
	}
	roots := TrustDomainRoots(in.Secrets, trustDomainOf)

	bundles = map[string]TrustBundle{}
	namespaces := maps.Clone(in.Current)
	for ns := range needs {
		namespaces[ns] = TrustBundle{}
	}
	for ns := range namespaces {
		current := Roots{}
		for td := range needs[ns] {
			maps.Copy(current, roots[td])
		}
		b := TrustBundle{Namespace: ns}
		for fp, der := range RootsOf(in.Current[ns].Roots) {
			if _, ok := current[fp]; ok {
				continue
			}
			until, ok := in.Current[ns].RetainedUntil[fp]
			if !ok {
				// Whole seconds (the annotation's precision), rounded up: never dropped early.
				until = in.Now.Add(in.Retention + time.Second - 1).Truncate(time.Second)
			}
			if !until.After(in.Now) {
				continue
			}
			current[fp] = der
			if b.RetainedUntil == nil {
				b.RetainedUntil = map[string]time.Time{}
			}
			b.RetainedUntil[fp] = until
			if next.IsZero() || until.Before(next) {
				next = until
			}
		}
		if len(current) == 0 {
			continue
		}
		b.Roots = current.Sorted()
		bundles[ns] = b
	}
	return bundles, next
}

// Roots are CA certificates (DER) by Fingerprint.
type Roots map[string][]byte

// TrustDomainRoots computes every trust domain's roots: the distinct CA certificates of the
// identity Secrets in use, by the trust domain of the identity each Secret is for. While a CA
// rotates, some Secrets carry the old root and some the new one, and peers must be trusted either
// way. trustDomainOf names each Secret in use (namespace and name) and its trust domain; any other
// Secret is left out, so a stale Secret cannot keep an old root trusted forever. Both the trust
// bundle ConfigMaps (TrustBundles) and Envoy's SDS bundles (xds/translate) come from it.
func TrustDomainRoots(secrets []IdentitySecret, trustDomainOf map[types.NamespacedName]string) map[string]Roots {
	roots := map[string]Roots{}
	for _, s := range secrets {
		td, ok := trustDomainOf[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}]
		if !ok {
			continue
		}
		for _, der := range pemCertificates(s.CA) {
			if roots[td] == nil {
				roots[td] = Roots{}
			}
			roots[td][Fingerprint(der)] = der
		}
	}
	return roots
}

// Sorted are the roots' DER sorted by fingerprint.
func (r Roots) Sorted() [][]byte {
	out := make([][]byte, 0, len(r))
	for _, fp := range slices.Sorted(maps.Keys(r)) {
		out = append(out, r[fp])
	}
	return out
}

// PEM is the roots as PEM certificates, sorted by fingerprint.
func (r Roots) PEM() []byte { return pemOf(r.Sorted()...) }

// RootsOf are the certificates of a bundle (DER) by fingerprint.
func RootsOf(ders [][]byte) Roots {
	r := Roots{}
	for _, der := range ders {
		r[Fingerprint(der)] = der
	}
	return r
}

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// pemCertificates returns the DER of every CERTIFICATE block.
func pemCertificates(data []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

// Trusts says whether the bundle holds every CA certificate of caPEM (an identity Secret's
// ca.crt); false when caPEM holds none.
func Trusts(b TrustBundle, caPEM []byte) bool {
	ders := pemCertificates(caPEM)
	for _, der := range ders {
		if !slices.ContainsFunc(b.Roots, func(r []byte) bool { return bytes.Equal(r, der) }) {
			return false
		}
	}
	return len(ders) > 0
}

// PEM is the bundle's ca.crt.
func (b TrustBundle) PEM() []byte { return pemOf(b.Roots...) }

// pemOf encodes certificates (DER) as PEM, in their order.
func pemOf(ders ...[]byte) []byte {
	var buf bytes.Buffer
	for _, der := range ders {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return buf.Bytes()
}

// ConfigMap is the bundle's ConfigMap.
func (b TrustBundle) ConfigMap() *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: b.Namespace,
			Name:      TrustBundleName,
			Labels:    map[string]string{LabelComponent: ComponentTrustBundle, LabelManagedBy: ManagedBy},
		},
		Data: map[string]string{TrustBundleKey: string(b.PEM())},
	}
	if len(b.RetainedUntil) > 0 {
		until := map[string]string{}
		for fp, t := range b.RetainedUntil {
			until[fp] = t.UTC().Format(time.RFC3339)
		}
		data, _ := json.Marshal(until) // a map of strings always marshals, with sorted keys
		cm.Annotations = map[string]string{AnnotationRetainedUntil: string(data)}
	}
	return cm
}

// TrustBundleOf reads a bundle back from its ConfigMap. A retention annotation it cannot read
// counts as none: those roots are then retained from now on, never dropped early.
func TrustBundleOf(cm *corev1.ConfigMap) TrustBundle {
	b := TrustBundle{Namespace: cm.Namespace, Roots: pemCertificates([]byte(cm.Data[TrustBundleKey]))}
	var until map[string]string
	if err := json.Unmarshal([]byte(cm.Annotations[AnnotationRetainedUntil]), &until); err == nil {
		for fp, s := range until {
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				if b.RetainedUntil == nil {
					b.RetainedUntil = map[string]time.Time{}
				}
				b.RetainedUntil[fp] = t
			}
		}
	}
	return b
}
