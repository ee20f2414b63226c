package main

import (
	"bytes"
	"hash/maphash"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ackCodec is the simulated proxies' gRPC codec: gRPC's proto codec, except that the resource
// names of a state-of-the-world request, which a proxy repeats in every ACK and which never
// change here, are encoded once per list. A real proxy encodes its ACKs on its own CPU; here the
// 2000 proxies share the server's two cores, and encoding 1000 names per ACK was most of the
// client process's CPU in the watch-all pushes, which the server's figures then paid for.
type ackCodec struct {
	encoding.CodecV2

	mu sync.Mutex
	// byList finds the encoding of a subscription's (long-lived) slice by its first element;
	// byContent shares it between the proxies that ask for the same names.
	byList    map[*string][]byte
	byContent map[uint64][]byte
	seed      maphash.Seed
}

func newACKCodec() *ackCodec {
	return &ackCodec{CodecV2: encoding.GetCodecV2("proto"), byList: map[*string][]byte{},
		byContent: map[uint64][]byte{}, seed: maphash.MakeSeed()}
}

// minCachedList is the shortest list worth caching.
const minCachedList = 8

func (c *ackCodec) Marshal(v any) (mem.BufferSlice, error) {
	req, ok := v.(*discoveryv3.DiscoveryRequest)
	if !ok || len(req.GetResourceNames()) < minCachedList {
		return c.CodecV2.Marshal(v)
	}
	b, err := proto.Marshal(&discoveryv3.DiscoveryRequest{
		VersionInfo:   req.GetVersionInfo(),
		Node:          req.GetNode(),
		TypeUrl:       req.GetTypeUrl(),
		ResponseNonce: req.GetResponseNonce(),
		ErrorDetail:   req.GetErrorDetail(),
	})
	if err != nil {
		return nil, err
	}
	// Fields may come in any order: this is the same message.
	return mem.BufferSlice{mem.SliceBuffer(append(b, c.encoded(req.GetResourceNames())...))}, nil
}

// encoded is the encoding of the resource_names field with names.
func (c *ackCodec) encoded(names []string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.byList[&names[0]]; ok {
		return b
	}
	var b []byte
	for _, n := range names {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	key := maphash.Bytes(c.seed, b)
	if shared, ok := c.byContent[key]; ok && bytes.Equal(shared, b) {
		b = shared
	} else {
		c.byContent[key] = b
	}
	c.byList[&names[0]] = b
	return b
}
