package mtls_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// sdsBundle follows the trust bundle an Envoy sidecar gets over SDS (trust-bundle:<trustDomain>,
// which the plain-text port serves to anyone) and records every version with when it came.
type sdsBundle struct {
	mu       sync.Mutex
	versions []sdsBundleVersion
}

type sdsBundleVersion struct {
	at  time.Time
	pem []byte
}

func watchSDSBundle(t *testing.T, trustDomain string) *sdsBundle {
	t.Helper()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	must(t, err)
	name := envoy.TrustBundleSecret(trustDomain)
	node := &corev3.Node{
		Id: envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.1", "sds-watch-1", "sds-watch"),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.NodeMetadataFlavour:        structpb.NewStringValue(string(envoy.FlavourEnvoy)),
			envoy.NodeMetadataNamespace:      structpb.NewStringValue("sds-watch"),
			envoy.NodeMetadataServiceAccount: structpb.NewStringValue("sds-watch"),
		}},
	}
	must(t, stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.SecretType, ResourceNames: []string{name}}))
	b := &sdsBundle{}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			for _, a := range r.GetResources() {
				s := &tlsv3.Secret{}
				if a.UnmarshalTo(s) == nil && s.GetName() == name {
					b.mu.Lock()
					b.versions = append(b.versions, sdsBundleVersion{at: time.Now(), pem: s.GetValidationContext().GetTrustedCa().GetInlineBytes()})
					b.mu.Unlock()
				}
			}
			ack := &discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: []string{name},
				VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
			if stream.Send(ack) != nil {
				return
			}
		}
	}()
	return b
}

// trusts says whether a bundle version holds ca's root.
func (v sdsBundleVersion) trusts(ca *testcertmanager.CA) bool {
	return bytes.Contains(v.pem, bytes.TrimSpace(ca.Bundle))
}

// droppedAt is when the first version without ca's root came (zero if none did), and whether a
// later version held it again.
func (b *sdsBundle) droppedAt(ca *testcertmanager.CA) (dropped time.Time, back bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range b.versions {
		switch {
		case !v.trusts(ca) && dropped.IsZero():
			dropped = v.at
		case v.trusts(ca) && !dropped.IsZero():
			back = true
		}
	}
	return dropped, back
}

// heldBoth says whether some version held both roots.
func (b *sdsBundle) heldBoth(a, c *testcertmanager.CA) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range b.versions {
		if v.trusts(a) && v.trusts(c) {
			return true
		}
	}
	return false
}
