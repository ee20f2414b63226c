package envoy

import (
	"fmt"
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// toAny packs m with deterministic marshalling, so the same config always gives the same bytes
// (maps inside, such as the access log's JSON format, would otherwise be ordered at random).
func toAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		// Marshalling a well-formed generated message does not fail.
		panic(fmt.Sprintf("packing %T: %v", m, err))
	}
	return a
}

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// socketAddress is a TCP address.
func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// adsConfigSource is "fetch over the ADS stream": the only config source grpc-go accepts besides
// self.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func isIP(host string) bool { return net.ParseIP(host) != nil }
