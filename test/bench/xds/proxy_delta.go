package main

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// deltaProxy is a proxyless gRPC client on a delta ADS stream: it subscribes by name with
// resource_names_subscribe and ACKs every response by its nonce.
type deltaProxy struct {
	conn *grpc.ClientConn
	node *corev3.Node
	sub  subscription
	ps   *proxyState
}

func (p *deltaProxy) run(ctx context.Context) error {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(p.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range subscriptionTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: p.sub.names[t]}
		if i == 0 {
			req.Node = p.node
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
			for _, r := range resp.GetResources() {
				if changed, err = carriesChange(r.GetResource(), e); err != nil {
					return err
				} else if changed {
					break
				}
			}
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		if changed {
			p.ps.acked(e)
		}
	}
}
