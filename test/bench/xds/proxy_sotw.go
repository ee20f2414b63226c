package main

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// sotwProxy is a proxyless gRPC client on a state-of-the-world ADS stream: it asks for its
// resources by name, and answers every response with an ACK that echoes version and nonce and
// repeats the names (a state-of-the-world request always carries the whole subscription).
type sotwProxy struct {
	conn *grpc.ClientConn
	node *corev3.Node
	sub  subscription
	ps   *proxyState
}

func (p *sotwProxy) run(ctx context.Context) error {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(p.conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range subscriptionTypes {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: p.sub.names[t]}
		if i == 0 {
			req.Node = p.node // the first request only, as Envoy and grpc-go do
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		e := p.ps.received(resp.GetTypeUrl(), len(resp.GetResources()), proto.Size(resp))
		changed := false
		if e != nil {
			for _, a := range resp.GetResources() {
				if changed, err = carriesChange(a, e); err != nil {
					return err
				} else if changed {
					break
				}
			}
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{
			TypeUrl:       resp.GetTypeUrl(),
			VersionInfo:   resp.GetVersionInfo(),
			ResponseNonce: resp.GetNonce(),
			ResourceNames: p.sub.names[resp.GetTypeUrl()],
		}); err != nil {
			return err
		}
		if changed {
			p.ps.acked(e)
		}
	}
}
