package translate

import (
	"bytes"
	"encoding/pem"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// The keys of an identity Secret that the mesh reads (cert-manager's names).
const (
	SecretKeyCertificate = corev1.TLSCertKey       // tls.crt
	SecretKeyPrivateKey  = corev1.TLSPrivateKeyKey // tls.key
	SecretKeyCA          = "ca.crt"
)

// secretKey is a Secret's namespace and name.
type secretKey struct{ namespace, name string }

// identityInUse is one identity some covered pod uses, and where its Secret is.
type identityInUse struct {
	spiffeID, trustDomain string
	secret                secretKey
	serviceAccount        string
}

// identitiesAndBundles lists the certificates of the identities the covered pods use (those
// whose identity Secret exists and holds a certificate and a key) and, per trust domain, the
// distinct CA certificates of those identities: while a CA rotates, some Secrets carry the old
// root and some the new one, and peers must be trusted either way.
func identitiesAndBundles(pods []*corev1.Pod, secrets []*corev1.Secret, security func(*corev1.Pod) podSecurity) ([]ir.Identity, []ir.TrustBundle) {
	inUse := map[string]identityInUse{}
	for _, pod := range pods {
		sec := security(pod)
		if sec.zt == nil || sec.identity == "" {
			continue
		}
		sa := serviceAccountOf(pod)
		inUse[sec.identity] = identityInUse{
			spiffeID:       sec.identity,
			trustDomain:    zerotrust.TrustDomain(sec.zt),
			secret:         secretKey{pod.Namespace, zerotrust.CertificateName(sa)},
			serviceAccount: sa,
		}
	}
	byKey := map[secretKey]*corev1.Secret{}
	for _, s := range secrets {
		byKey[secretKey{s.Namespace, s.Name}] = s
	}

	var identities []ir.Identity
	cas := map[string]map[string][]byte{} // trust domain → DER → PEM block
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
		if cas[id.trustDomain] == nil {
			cas[id.trustDomain] = map[string][]byte{}
		}
		for _, block := range pemCertificates(s.Data[SecretKeyCA]) {
			cas[id.trustDomain][string(block.Bytes)] = pem.EncodeToMemory(block)
		}
	}
	sort.Slice(identities, func(i, j int) bool { return identities[i].SPIFFEID < identities[j].SPIFFEID })

	var bundles []ir.TrustBundle
	for td, certs := range cas {
		if len(certs) == 0 {
			continue
		}
		ders := make([]string, 0, len(certs))
		for der := range certs {
			ders = append(ders, der)
		}
		sort.Strings(ders)
		var b strings.Builder
		for _, der := range ders {
			b.Write(certs[der])
		}
		bundles = append(bundles, ir.TrustBundle{TrustDomain: td, CACertificates: b.String()})
	}
	sort.Slice(bundles, func(i, j int) bool { return bundles[i].TrustDomain < bundles[j].TrustDomain })
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

// pemCertificates are the CERTIFICATE blocks of a PEM bundle; anything else in it is skipped.
func pemCertificates(data []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, &pem.Block{Type: block.Type, Bytes: block.Bytes})
		}
	}
}
