package server

import (
	"bytes"
	"hash/maphash"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Every state-of-the-world request repeats the whole subscription: an ACK of a proxy that watches
// 1000 services carries 1000 names per type, and decoding them (a string each, checked for UTF-8)
// was most of the server's CPU in a push. requestCodec decodes the resource names of a request
// only the first time their exact bytes are seen; later requests with the same list, from any
// stream, share the decoded slice. Everything else is gRPC's own proto codec.

// namesTag starts each resource name of a DiscoveryRequest: field 3, length-delimited.
const namesTag = 3<<3 | byte(protowire.BytesType)

// minSharedList is the shortest list worth sharing.
const minSharedList = 8

// maxSharedBytes bounds the encoded lists kept; when full, the table starts again.
const maxSharedBytes = 64 << 20

type requestCodec struct {
	encoding.CodecV2
	lists *nameLists
}

func newRequestCodec() requestCodec {
	return requestCodec{CodecV2: encoding.GetCodecV2("proto"), lists: &nameLists{seed: maphash.MakeSeed(), byHash: map[uint64]*nameList{}}}
}

// nameLists are the decoded lists, by a hash of their encoding.
type nameLists struct {
	seed   maphash.Seed
	mu     sync.Mutex
	byHash map[uint64]*nameList
	bytes  int
}

// nameList is one list: its encoding, and the names, shared and never changed (the session,
// session.go, only reads them).
type nameList struct {
	raw   []byte
	names []string
}

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*discovery.DiscoveryRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	// gRPC's codec copies the message into a buffer of its pool, which clears it first: for
	// requests of 50 KB that was a quarter of the server's CPU. A buffer of this pool is only
	// written over (decoding copies what it keeps).
	bp := requestBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, buf := range data {
		b = append(b, buf.ReadOnlyData()...)
	}
	defer func() {
		if cap(b) <= maxPooledRequest {
			*bp = b
			requestBufs.Put(bp)
		}
	}()
	if c.lists.decode(b, req) {
		return nil
	}
	return proto.Unmarshal(b, req)
}

// requestBufs hold encoded requests while they are decoded.
var requestBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledRequest is the largest buffer requestBufs keeps.
const maxPooledRequest = 1 << 20

// decode decodes b into req if its names are a known list (or a list to remember), and reports
// whether it did. The names must be one run of fields, as every encoder writes them.
func (l *nameLists) decode(b []byte, req *discovery.DiscoveryRequest) bool {
	start, end, n := -1, -1, 0
	var rest []byte
	for p := 0; p < len(b); {
		if b[p] == namesTag {
			if start >= 0 && end != p {
				return false // a second run
			}
			if start < 0 {
				start = p
			}
			size, vn := protowire.ConsumeVarint(b[p+1:])
			if vn < 0 || size > uint64(len(b)-p-1-vn) {
				return false
			}
			p += 1 + vn + int(size)
			end, n = p, n+1
			continue
		}
		num, typ, tl := protowire.ConsumeTag(b[p:])
		if tl < 0 {
			return false
		}
		fl := protowire.ConsumeFieldValue(num, typ, b[p+tl:])
		if fl < 0 {
			return false
		}
		rest = append(rest, b[p:p+tl+fl]...)
		p += tl + fl
	}
	if n < minSharedList {
		return false
	}
	run := b[start:end]
	key := maphash.Bytes(l.seed, run)
	l.mu.Lock()
	known := l.byHash[key]
	l.mu.Unlock()
	if known != nil && bytes.Equal(known.raw, run) {
		if err := proto.Unmarshal(rest, req); err != nil {
			req.Reset()
			return false
		}
		req.ResourceNames = known.names
		return true
	}
	// New: decode the whole request, which checks the names, and remember them.
	if err := proto.Unmarshal(b, req); err != nil {
		req.Reset()
		return false
	}
	l.mu.Lock()
	if l.bytes+len(run) > maxSharedBytes {
		clear(l.byHash)
		l.bytes = 0
	}
	if _, taken := l.byHash[key]; !taken {
		l.byHash[key] = &nameList{raw: bytes.Clone(run), names: req.ResourceNames}
		l.bytes += len(run)
	}
	l.mu.Unlock()
	return true
}
