package translate

import (
	"bytes"
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// The keys of an identity Secret that the mesh reads (cert-manager's names).
const (
	SecretKeyCertificate = corev1.TLSCertKey       // tls.crt
	SecretKeyPrivateKey  = corev1.TLSPrivateKeyKey // tls.key
	SecretKeyCA          = "ca.crt"
)

// identityInUse is one identity some covered pod uses, and where its Secret is.
type identityInUse struct {
	spiffeID, trustDomain string
	secret                types.NamespacedName
	serviceAccount        string
}

// identitiesAndBundles lists the certificates of the identities the covered pods use (those
// whose identity Secret exists and holds a certificate and a key) and each trust domain's bundle:
// the distinct CA certificates of those identities plus the roots the leader retains in the
// trust bundle ConfigMaps (zerotrust.TrustDomainBundles), so Envoy trusts what the proxyless
// workloads' files trust, on every replica.
func identitiesAndBundles(pods []*corev1.Pod, secrets []*corev1.Secret, configMaps []*corev1.ConfigMap, security func(*corev1.Pod) podSecurity) ([]ir.Identity, []ir.TrustBundle) {
	inUse := map[string]identityInUse{}
	uses := map[string]map[string]bool{} // namespace → trust domains
	for _, pod := range pods {
		sec := security(pod)
		if sec.zt == nil || sec.identity == "" {
			continue
		}
		sa := serviceAccountOf(pod)
		td := zerotrust.TrustDomain(sec.zt)
		inUse[sec.identity] = identityInUse{
			spiffeID:       sec.identity,
			trustDomain:    td,
			secret:         types.NamespacedName{Namespace: pod.Namespace, Name: zerotrust.CertificateName(sa)},
			serviceAccount: sa,
		}
		if uses[pod.Namespace] == nil {
			uses[pod.Namespace] = map[string]bool{}
		}
		uses[pod.Namespace][td] = true
	}
	byKey := map[types.NamespacedName]*corev1.Secret{}
	for _, s := range secrets {
		byKey[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}

	var identities []ir.Identity
	var issued []zerotrust.IdentitySecret
	trustDomainOf := map[types.NamespacedName]string{}
	for _, id := range inUse {
		s := byKey[id.secret]
		if !isIdentitySecret(s, id.serviceAccount) {
			continue // not issued yet
		}
		identities = append(identities, ir.Identity{
			SPIFFEID:         id.spiffeID,
			CertificateChain: string(s.Data[SecretKeyCertificate]),
			PrivateKey:       ir.SecretText(s.Data[SecretKeyPrivateKey]),
			Source:           refOf("Secret", s.Namespace, s.Name),
		})
		issued = append(issued, zerotrust.IdentitySecret{Namespace: s.Namespace, Name: s.Name, CA: s.Data[SecretKeyCA]})
		trustDomainOf[id.secret] = id.trustDomain
	}
	sort.Slice(identities, func(i, j int) bool { return identities[i].SPIFFEID < identities[j].SPIFFEID })

	held := map[string]zerotrust.TrustBundle{}
	for _, cm := range configMaps {
		if cm.Name == zerotrust.TrustBundleName && cm.Labels[zerotrust.LabelComponent] == zerotrust.ComponentTrustBundle {
			held[cm.Namespace] = zerotrust.TrustBundleOf(cm)
		}
	}
	roots := zerotrust.TrustDomainBundles(zerotrust.TrustDomainRoots(issued, trustDomainOf), uses, held)
	var bundles []ir.TrustBundle
	for _, td := range slices.Sorted(maps.Keys(roots)) {
		bundles = append(bundles, ir.TrustBundle{TrustDomain: td, CACertificates: string(roots[td].PEM())})
	}
	return identities, bundles
}

// isIdentitySecret says whether s is the issued identity Secret of serviceAccount: it carries the
// identity labels cert-manager copies from the Certificate's secretTemplate, a certificate and a
// key.
func isIdentitySecret(s *corev1.Secret, serviceAccount string) bool {
	return s != nil && s.Labels[zerotrust.LabelIdentity] == "true" &&
		s.Labels[zerotrust.LabelServiceAccount] == serviceAccount &&
		len(bytes.TrimSpace(s.Data[SecretKeyCertificate])) > 0 && len(bytes.TrimSpace(s.Data[SecretKeyPrivateKey])) > 0
}
