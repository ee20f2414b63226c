package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// Who a stream is, and what it may ask for. On the mutual TLS port the client certificate says
// who the node is (certificateIdentity), and the node must claim that same namespace and service
// account; it may fetch over SDS only its own identity's certificate (by SPIFFE ID, or as
// envoy.WorkloadSecret) and trust bundles. On the plain-text port, where anyone can claim
// anything, a node may fetch trust bundles only. A refused stream ends with PermissionDenied and
// counts in sluice_xds_refused_streams_total{reason}.

// Reasons of sluice_xds_refused_streams_total.
const (
	refusedCertificate = "certificate" // the client certificate carries no single workload SPIFFE ID
	refusedNode        = "node"        // the node claims another namespace or service account
	refusedSecret      = "secret"      // SDS for another identity's secret, or every secret
)

// refusal ends a stream: the reason for the metric and the status for the client.
type refusal struct {
	reason string
	err    error
}

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, err: status.Errorf(codes.PermissionDenied, format, args...)}
}

// refusals counts and logs the refusal of a stream from the peer of ctx.
func (s *Server) refusals(ctx context.Context) func(*refusal) {
	return func(r *refusal) {
		s.metrics.refusedStreams.WithLabelValues(r.reason).Inc()
		address := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			address = p.Addr.String()
		}
		s.log.Info("Refused an xDS stream", "peer", address, "reason", r.reason, "error", status.Convert(r.err).Message())
	}
}

// streamAuth is what the server knows of a stream's identity. It lives on the goroutine that
// reads the stream (the session's Recv side).
type streamAuth struct {
	// cert is the identity of the verified client certificate; nil on the plain-text port, where
	// nodes are not authenticated and get no private key.
	cert *workloadID
}

// authFromPeer reads the client certificate of a new stream. A stream without a verified
// certificate (the plain-text port) is let through with no identity.
func authFromPeer(ctx context.Context) (streamAuth, *refusal) {
	p, _ := peer.FromContext(ctx)
	cert := peerCertificate(p)
	if cert == nil {
		return streamAuth{}, nil
	}
	id, err := certificateIdentity(cert)
	if err != nil {
		return streamAuth{}, refuse(refusedCertificate, "%v", err)
	}
	return streamAuth{cert: &id}, nil
}

// admitNode checks the node of a request (nil when the request carries none): on the mutual TLS
// port it must claim its certificate's namespace and service account.
func (a *streamAuth) admitNode(n *core.Node) *refusal {
	if n == nil || a.cert == nil {
		return nil
	}
	if why := claimOf(n).mismatch(*a.cert); why != "" {
		return refuse(refusedNode, "node %q may not use this xDS stream: %s", n.GetId(), why)
	}
	return nil
}

// secretNames checks the names of an SDS request and returns them as the caches know them:
// envoy.WorkloadSecret becomes the node's own identity (defaultAliasName). wildcard is whether
// the request asks for every secret.
func (a *streamAuth) secretNames(names []string, wildcard bool) ([]string, *refusal) {
	if wildcard {
		return nil, refuse(refusedSecret, "SDS requests must name the secrets they ask for: a node may fetch %q, its own SPIFFE ID and %s<trustDomain>",
			envoy.WorkloadSecret, envoy.TrustBundleSecret(""))
	}
	var out []string
	for i, name := range names {
		mapped, r := a.secretName(name)
		if r != nil {
			return nil, r
		}
		if mapped != name && out == nil {
			out = append(make([]string, 0, len(names)), names[:i]...)
		}
		if out != nil {
			out = append(out, mapped)
		}
	}
	if out == nil {
		return names, nil
	}
	return out, nil
}

// unsubscribedSecrets maps the names a delta request unsubscribes as secretNames does; giving up a
// secret needs no permission.
func (a *streamAuth) unsubscribedSecrets(names []string) []string {
	for i, name := range names {
		if name == envoy.WorkloadSecret && a.cert != nil {
			out := append([]string(nil), names...)
			out[i] = defaultAliasName(nsSA{a.cert.namespace, a.cert.serviceAccount})
			return out
		}
	}
	return names
}

func (a *streamAuth) secretName(name string) (string, *refusal) {
	if envoy.IsTrustBundleSecret(name) {
		return name, nil
	}
	id, isID := parseWorkloadID(name)
	own := name == envoy.WorkloadSecret || (isID && id.String() == name)
	switch {
	case own && a.cert == nil:
		return "", refuse(refusedSecret, "SDS secret %q: the plain-text xDS port serves no private key, since it cannot tell who a node is; "+
			"connect to the mutual TLS port (--xds-bind-address) with the workload's certificate", name)
	case name == envoy.WorkloadSecret:
		return defaultAliasName(nsSA{a.cert.namespace, a.cert.serviceAccount}), nil
	case own && id == *a.cert:
		return name, nil
	}
	allowed := "trust bundles only"
	if a.cert != nil {
		allowed = fmt.Sprintf("%q, %q and %s<trustDomain>", envoy.WorkloadSecret, a.cert.String(), envoy.TrustBundleSecret(""))
	}
	return "", refuse(refusedSecret, "SDS secret %q is not this node's: it may fetch %s", name, allowed)
}

// defaultAliasPrefix starts the cache name of the copy of an identity's certificate that a node of
// that identity is sent as envoy.WorkloadSecret. Nodes cannot ask for such names themselves.
const defaultAliasPrefix = "default@"

// defaultAliasName is the cache name of the default secret of the nodes of w.
func defaultAliasName(w nsSA) string {
	return defaultAliasPrefix + w.namespace + "/" + w.serviceAccount
}

// addDefaultAliases adds, for every identity certificate among secrets (named by a workload
// SPIFFE ID), a copy named envoy.WorkloadSecret under defaultAliasName: what the nodes of that
// namespace and service account get when they ask for the default secret. Should one service
// account have certificates in two trust domains, the first SPIFFE ID in name order is its default.
func addDefaultAliases(secrets map[string]types.Resource) {
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		sec, ok := secrets[name].(*tlsv3.Secret)
		id, isID := parseWorkloadID(name)
		if !ok || !isID || sec.GetTlsCertificate() == nil {
			continue
		}
		alias := defaultAliasName(nsSA{id.namespace, id.serviceAccount})
		if _, taken := secrets[alias]; taken {
			continue
		}
		def := proto.Clone(sec).(*tlsv3.Secret)
		def.Name = envoy.WorkloadSecret
		secrets[alias] = def
	}
}

// wireSecretName is the name a node knows a cached secret by.
func wireSecretName(name string) string {
	if strings.HasPrefix(name, defaultAliasPrefix) {
		return envoy.WorkloadSecret
	}
	return name
}
