package zerotrust

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Labels and annotations on what the identity controller creates.
const (
	// LabelIdentity marks Sluice's identity Certificates and, through secretTemplate, their
	// Secrets: the only Secrets the operator ever needs to read.
	LabelIdentity = "mesh.sluice.dev/identity"
	// LabelServiceAccount is the service account an identity Certificate or Secret is for.
	LabelServiceAccount = "mesh.sluice.dev/service-account"
	// LabelManagedBy marks what Sluice manages (app.kubernetes.io/managed-by: sluice).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "sluice"
	// AnnotationZeroTrust names (<namespace>/<name>) the ZeroTrust a Certificate was made for.
	// It is an annotation because a label value cannot hold a "/", and it is the only link to a
	// mesh-wide ZeroTrust, since owner references cannot cross namespaces.
	AnnotationZeroTrust = "mesh.sluice.dev/zerotrust"
	// CertificatePrefix starts the name of every identity Certificate and its Secret.
	CertificatePrefix = "sluice-identity-"
)

// Defaults of the Identity fields, as the CRD sets them.
const (
	DefaultTrustDomain = "cluster.local"
	DefaultDuration    = 24 * time.Hour
	DefaultRenewBefore = 8 * time.Hour
	certManagerGroup   = "cert-manager.io"
)

// CertificateGVK is cert-manager's Certificate kind; the main module does not import cert-manager,
// so its objects are unstructured.
var CertificateGVK = schema.GroupVersionKind{Group: certManagerGroup, Version: "v1", Kind: "Certificate"}

// Identity is one SPIFFE identity in use: a service account of a namespace with at least one pod
// covered by a ZeroTrust that has spec.identity (whatever its mode).
type Identity struct {
	Namespace      string
	ServiceAccount string
	// ZeroTrust decides the certificate's issuer, trust domain and lifetimes: of the ZeroTrusts
	// covering the service account's pods, the most specific, then the oldest.
	ZeroTrust *meshv1alpha1.ZeroTrust
	// Pods is how many covered pods use the identity.
	Pods int
}

// Key is the Certificate's namespace and name.
func (id Identity) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: id.Namespace, Name: CertificateName(id.ServiceAccount)}
}

// SPIFFEID is spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
func (id Identity) SPIFFEID() string {
	return SPIFFEID(TrustDomain(id.ZeroTrust), id.Namespace, id.ServiceAccount)
}

// SPIFFEID is the identity of a service account.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// TrustDomain is the ZeroTrust's trust domain, DefaultTrustDomain when it names none.
func TrustDomain(zt *meshv1alpha1.ZeroTrust) string {
	if id := zt.Spec.Identity; id != nil && id.TrustDomain != "" {
		return id.TrustDomain
	}
	return DefaultTrustDomain
}

// CertificateName is sluice-identity-<serviceAccount>, shortened with a hash when that would pass
// the 253 characters of an object name.
func CertificateName(serviceAccount string) string {
	name := CertificatePrefix + serviceAccount
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(serviceAccount))
	return name[:253-11] + "-" + hex.EncodeToString(sum[:])[:10]
}

// issuesIdentities says whether a ZeroTrust asks for certificates: whenever it has spec.identity,
// DISABLE included, because proxies authenticate to the xDS server with them (docs/zerotrust.md).
func issuesIdentities(zt *meshv1alpha1.ZeroTrust) bool {
	return zt.Spec.Identity != nil
}

// Identities lists the identities the coverage asks for, sorted by namespace and service account.
func Identities(c Coverage, pods []Pod) []Identity {
	type saKey struct{ namespace, sa string }
	type best struct {
		id   Identity
		rank rank
	}
	found := map[saKey]*best{}
	for _, pod := range pods {
		cov, ok := c.ByPod[pod.Key()]
		if !ok || !issuesIdentities(cov.ZeroTrust) {
			continue
		}
		k := saKey{pod.Namespace, pod.ServiceAccountName()}
		r := rank{scope: cov.Scope, requirements: cov.Requirements}
		b := found[k]
		if b == nil {
			found[k] = &best{id: Identity{Namespace: pod.Namespace, ServiceAccount: k.sa, ZeroTrust: cov.ZeroTrust, Pods: 1}, rank: r}
			continue
		}
		b.id.Pods++
		if r.above(b.rank) || (!b.rank.above(r) && Older(cov.ZeroTrust, b.id.ZeroTrust)) {
			b.id.ZeroTrust, b.rank = cov.ZeroTrust, r
		}
	}
	out := make([]Identity, 0, len(found))
	for _, b := range found {
		out = append(out, b.id)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].ServiceAccount < out[j].ServiceAccount
	})
	return out
}

// Certificate is the cert-manager Certificate of an identity: its Secret has the same name, the
// SPIFFE ID is its only SAN (a URI), the key is ECDSA P-256, and the issuer, duration and
// renewBefore are the ZeroTrust's. It is owned by the ZeroTrust when both share a namespace; the
// annotation AnnotationZeroTrust names it in every case.
func Certificate(id Identity) *unstructured.Unstructured {
	zt := id.ZeroTrust
	spec := zt.Spec.Identity
	ref := spec.IssuerRef
	if ref.Group == "" {
		ref.Group = certManagerGroup
	}
	if ref.Kind == "" {
		ref.Kind = "Issuer"
	}
	duration, renewBefore := DefaultDuration, DefaultRenewBefore
	if spec.Duration != nil {
		duration = spec.Duration.Duration
	}
	if spec.RenewBefore != nil {
		renewBefore = spec.RenewBefore.Duration
	}
	name := CertificateName(id.ServiceAccount)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"secretName":  name,
			"uris":        []any{id.SPIFFEID()},
			"duration":    duration.String(),
			"renewBefore": renewBefore.String(),
			"issuerRef":   map[string]any{"group": ref.Group, "kind": ref.Kind, "name": ref.Name},
			"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256)},
			"usages":      []any{"server auth", "client auth", "digital signature", "key encipherment"},
			"secretTemplate": map[string]any{"labels": map[string]any{
				LabelIdentity:       "true",
				LabelServiceAccount: id.ServiceAccount,
				LabelManagedBy:      ManagedBy,
			}},
		},
	}}
	obj.SetGroupVersionKind(CertificateGVK)
	obj.SetNamespace(id.Namespace)
	obj.SetName(name)
	obj.SetLabels(map[string]string{
		LabelIdentity:       "true",
		LabelServiceAccount: id.ServiceAccount,
		LabelManagedBy:      ManagedBy,
	})
	obj.SetAnnotations(map[string]string{AnnotationZeroTrust: KeyOf(zt).String()})
	if zt.Namespace == id.Namespace {
		obj.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion: meshv1alpha1.GroupVersion.String(),
			Kind:       "ZeroTrust",
			Name:       zt.Name,
			UID:        zt.UID,
			Controller: ptr.To(true),
		}})
	}
	return obj
}

// UpToDate says whether an existing Certificate already has everything want sets (labels,
// annotations, owner references and spec); fields that cert-manager or its webhook default are
// ignored.
func UpToDate(existing, want *unstructured.Unstructured) bool {
	for _, field := range []string{"spec"} {
		if !covers(existing.Object[field], want.Object[field]) {
			return false
		}
	}
	for k, v := range want.GetLabels() {
		if existing.GetLabels()[k] != v {
			return false
		}
	}
	for k, v := range want.GetAnnotations() {
		if existing.GetAnnotations()[k] != v {
			return false
		}
	}
	return ownersUpToDate(existing.GetOwnerReferences(), want.GetOwnerReferences())
}

// ownersUpToDate says whether have holds every owner reference of want and no other ZeroTrust.
func ownersUpToDate(have, want []metav1.OwnerReference) bool {
	same := func(a, b metav1.OwnerReference) bool { return a.UID == b.UID && a.Name == b.Name && a.Kind == b.Kind }
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h metav1.OwnerReference) bool { return same(h, w) }) {
			return false
		}
	}
	for _, h := range have {
		if h.Kind == "ZeroTrust" && h.APIVersion == meshv1alpha1.GroupVersion.String() &&
			!slices.ContainsFunc(want, func(w metav1.OwnerReference) bool { return same(h, w) }) {
			return false
		}
	}
	return true
}

// covers says whether have holds every value of want: maps may have more keys, lists must have
// the same length with each element covered.
func covers(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !covers(h[k], v) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !covers(h[i], w[i]) {
				return false
			}
		}
		return true
	case int64:
		switch h := have.(type) {
		case int64:
			return h == w
		case float64:
			return h == float64(w)
		}
		return false
	default:
		return have == want
	}
}
