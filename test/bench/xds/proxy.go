package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// fleet is what the simulated proxies of the client process share.
type fleet struct {
	// armed is the change the proxies look for; nil before the first push.
	armed atomic.Pointer[expectation]
	// ready gets one value per proxy that holds and ACKed its whole initial configuration.
	ready chan struct{}
	// acks gets one record per proxy and push.
	acks chan ackRecord
	// failed gets the first stream error.
	failed chan error
	// sem bounds the proxies fetching their initial configuration at once.
	sem chan struct{}

	initialBytes, initialResponses atomic.Int64
	pushBytes, pushResponses       atomic.Int64
}

func newFleet(proxies, pushes, parallel int) *fleet {
	return &fleet{
		ready: make(chan struct{}, proxies),
		// Room for every ACK of every push, so that a proxy never blocks on a late one.
		acks:   make(chan ackRecord, proxies*pushes),
		failed: make(chan error, 1),
		sem:    make(chan struct{}, parallel),
	}
}

func (f *fleet) fail(err error) {
	select {
	case f.failed <- err:
	default:
	}
}

// expectation is one push: the changed route must carry v1 at this weight.
type expectation struct {
	push     int
	v1Weight uint32
}

type ackRecord struct {
	push int
	at   int64 // Unix nanoseconds, right after the ACK was handed to gRPC
}

// proxyState is one proxy's progress, owned by its goroutine.
type proxyState struct {
	f        *fleet
	want     map[string]int // resources per type in the initial configuration
	got      map[string]int
	ready    bool
	lastPush int
}

func newProxyState(f *fleet, sub subscription) *proxyState {
	ps := &proxyState{f: f, want: map[string]int{}, got: map[string]int{}}
	for t, names := range sub.names {
		ps.want[t] = len(names)
	}
	return ps
}

// received accounts for a response of typeURL carrying n resources in size bytes, and returns
// the change to look for in it, if any.
func (ps *proxyState) received(typeURL string, n, size int) *expectation {
	if !ps.ready {
		ps.f.initialBytes.Add(int64(size))
		ps.f.initialResponses.Add(1)
		ps.got[typeURL] += n
		for t, w := range ps.want {
			if ps.got[t] < w {
				return nil
			}
		}
		ps.ready = true
		ps.f.ready <- struct{}{}
		<-ps.f.sem
		return nil
	}
	ps.f.pushBytes.Add(int64(size))
	ps.f.pushResponses.Add(1)
	e := ps.f.armed.Load()
	if e == nil || e.push <= ps.lastPush || typeURL != resource.RouteType {
		return nil
	}
	return e
}

// acked records that the proxy sent its ACK of push e.
func (ps *proxyState) acked(e *expectation) {
	ps.lastPush = e.push
	ps.f.acks <- ackRecord{push: e.push, at: time.Now().UnixNano()}
}

// carriesChange decodes a route configuration, as a client would before ACKing it, and reports
// whether it is the changed route with v1 at the expected weight.
func carriesChange(a *anypb.Any, e *expectation) (bool, error) {
	rc := &routev3.RouteConfiguration{}
	if err := a.UnmarshalTo(rc); err != nil {
		return false, fmt.Errorf("decoding a route configuration: %w", err)
	}
	if rc.GetName() != changedRoute {
		return false, nil
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				if wc.GetName() == changedCluster && wc.GetWeight().GetValue() == e.v1Weight {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// proxyNode is the node of proxy p: a proxyless gRPC application, as docs/xds.md describes it.
func proxyNode(p int) *corev3.Node {
	pod := fmt.Sprintf("client-%05d", p)
	ip := fmt.Sprintf("10.244.%d.%d", p/250, 1+p%250)
	str := structpb.NewStringValue
	return &corev3.Node{
		Id:            envoy.NodeID(envoy.FlavourGRPC, ip, pod, benchNamespace),
		Cluster:       "client." + benchNamespace,
		UserAgentName: "sluice-bench-xds",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			envoy.NodeMetadataFlavour:        str(string(envoy.FlavourGRPC)),
			envoy.NodeMetadataNamespace:      str(benchNamespace),
			envoy.NodeMetadataPod:            str(pod),
			envoy.NodeMetadataWorkload:       str("client"),
			envoy.NodeMetadataVersion:        str("v1"),
			envoy.NodeMetadataServiceAccount: str("client"),
		}},
	}
}

// runProxy runs one proxy until ctx ends, reporting a stream failure to the fleet.
func runProxy(ctx context.Context, run func(context.Context) error, f *fleet, p int) {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	if err := run(ctx); err != nil && ctx.Err() == nil {
		f.fail(fmt.Errorf("proxy %d: %w", p, err))
	}
}
