package server

import (
	"fmt"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Requests decode as with gRPC's codec; requests with the same long list share its slice.
func TestRequestCodecSharesNames(t *testing.T) {
	c := newRequestCodec()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprint("route-", i))
	}
	decode := func(in *discovery.DiscoveryRequest) *discovery.DiscoveryRequest {
		t.Helper()
		b, err := proto.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out := &discovery.DiscoveryRequest{}
		// In two buffers, as gRPC hands over a message that spans frames.
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:len(b)/2]), mem.SliceBuffer(b[len(b)/2:])}, out); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in, out) {
			t.Fatalf("decoded %v, want %v", out, in)
		}
		return out
	}
	first := decode(&discovery.DiscoveryRequest{TypeUrl: "t", Node: testNode("n", ""), ResourceNames: names})
	ack := decode(&discovery.DiscoveryRequest{TypeUrl: "t", VersionInfo: "3", ResponseNonce: "7", ResourceNames: names})
	if &first.ResourceNames[0] != &ack.ResourceNames[0] {
		t.Error("the same list was decoded twice")
	}
	other := decode(&discovery.DiscoveryRequest{TypeUrl: "t", ResourceNames: append([]string{"x"}, names[1:]...)})
	if &other.ResourceNames[0] == &first.ResourceNames[0] {
		t.Error("another list shares the first one")
	}
	decode(&discovery.DiscoveryRequest{TypeUrl: "t", ResourceNames: names[:2]})
	// Names in two runs (no encoder writes that) are decoded in full.
	b := append(mustMarshal(t, &discovery.DiscoveryRequest{ResourceNames: names, TypeUrl: "t"}), mustMarshal(t, &discovery.DiscoveryRequest{ResourceNames: []string{"z"}})...)
	two := &discovery.DiscoveryRequest{}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, two); err != nil || len(two.GetResourceNames()) != 21 || two.GetResourceNames()[20] != "z" {
		t.Errorf("two runs decoded as %v, %v", two.GetResourceNames(), err)
	}
	// Bad UTF-8 in a name is an error, as with gRPC's codec.
	bad := mustMarshal(t, &discovery.DiscoveryRequest{ResourceNames: names})
	bad[len(bad)-1] = 0xff
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &discovery.DiscoveryRequest{}); err == nil {
		t.Error("a name that is not UTF-8 decoded")
	}
	// Other messages go to gRPC's codec.
	d := &discovery.DeltaDiscoveryRequest{}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(mustMarshal(t, &discovery.DeltaDiscoveryRequest{TypeUrl: "t"}))}, d); err != nil || d.GetTypeUrl() != "t" {
		t.Errorf("delta request decoded as %v, %v", d, err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, &discovery.DiscoveryRequest{}); err == nil {
		t.Error("garbage decoded")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
