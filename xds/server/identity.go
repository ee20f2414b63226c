package server

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// workloadID is a workload's SPIFFE ID, spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
type workloadID struct {
	trustDomain, namespace, serviceAccount string
}

func (w workloadID) String() string {
	return "spiffe://" + w.trustDomain + "/ns/" + w.namespace + "/sa/" + w.serviceAccount
}

// parseWorkloadID reads a workload SPIFFE ID; anything else (another path, a port, a query...) is
// not one.
func parseWorkloadID(s string) (workloadID, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.Port() != "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" || u.Opaque != "" {
		return workloadID{}, false
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[2] == "" || parts[3] != "sa" || parts[4] == "" {
		return workloadID{}, false
	}
	return workloadID{trustDomain: u.Host, namespace: parts[2], serviceAccount: parts[4]}, true
}

// certificateIdentity is the workload identity of a verified client certificate: its one SPIFFE
// URI SAN, which must be a workload ID.
func certificateIdentity(cert *x509.Certificate) (workloadID, error) {
	var spiffe []string
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			spiffe = append(spiffe, u.String())
		}
	}
	if len(spiffe) != 1 {
		return workloadID{}, fmt.Errorf("the client certificate carries %d SPIFFE IDs %v; it must carry exactly one, "+
			"spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> (the workload's identity certificate)", len(spiffe), spiffe)
	}
	id, ok := parseWorkloadID(spiffe[0])
	if !ok {
		return workloadID{}, fmt.Errorf("the client certificate's SPIFFE ID %q is not a workload identity "+
			"spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>", spiffe[0])
	}
	return id, nil
}

// peerCertificate is the verified client certificate of a stream served over mutual TLS; nil for
// a stream without one (the plain-text port).
func peerCertificate(p *peer.Peer) *x509.Certificate {
	if p == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// nodeClaim is the namespace and service account a node says it runs as (docs/xds.md: the node
// metadata, and the namespace in node.id).
type nodeClaim struct {
	namespace, serviceAccount string
	// idNamespaces are the namespaces node.id names (<pod>.<namespace> and
	// <namespace>.svc.cluster.local); nil when node.id does not have the documented form.
	idNamespaces []string
}

func claimOf(n *core.Node) nodeClaim {
	meta := n.GetMetadata().GetFields()
	c := nodeClaim{
		namespace:      meta[envoy.NodeMetadataNamespace].GetStringValue(),
		serviceAccount: meta[envoy.NodeMetadataServiceAccount].GetStringValue(),
	}
	// <flavour>~<podIP>~<pod>.<namespace>~<namespace>.svc.cluster.local; a pod name may hold dots,
	// a namespace may not.
	if parts := strings.Split(n.GetId(), "~"); len(parts) == 4 {
		i := strings.LastIndexByte(parts[2], '.')
		domain, _, found := strings.Cut(parts[3], ".")
		if i > 0 && found {
			c.idNamespaces = []string{parts[2][i+1:], domain}
		}
	}
	return c
}

// mismatch says how the claim differs from the certificate's identity; "" when it matches.
func (c nodeClaim) mismatch(id workloadID) string {
	switch {
	case c.namespace != id.namespace:
		return fmt.Sprintf("node metadata %s is %q but the client certificate is %s", envoy.NodeMetadataNamespace, c.namespace, id)
	case c.serviceAccount != id.serviceAccount:
		return fmt.Sprintf("node metadata %s is %q but the client certificate is %s", envoy.NodeMetadataServiceAccount, c.serviceAccount, id)
	case c.idNamespaces == nil:
		return "node.id does not have the form <flavour>~<podIP>~<pod>.<namespace>~<namespace>.svc.cluster.local"
	}
	for _, ns := range c.idNamespaces {
		if ns != id.namespace {
			return fmt.Sprintf("node.id names namespace %q but the client certificate is %s", ns, id)
		}
	}
	return ""
}

// nsSA is a namespace and service account: what one workload identity is for.
type nsSA struct{ namespace, serviceAccount string }
