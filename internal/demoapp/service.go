package demoapp

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// maxResponseSize bounds SimpleRequest.ResponseSize, so a caller cannot make the server allocate
// without limit.
const maxResponseSize = 1 << 20

// testService implements grpc.testing.TestService's unary methods; the streaming ones answer
// Unimplemented.
type testService struct {
	testpb.UnimplementedTestServiceServer
	hostname, version string
	faults            *faults
}

func (s *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := s.misbehave(ctx); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// UnaryCall answers with the pod name and version whatever the request asks, honours the
// request's response_status (so a test can produce any status) and response_size, and with
// fill_username answers the caller's SPIFFE ID as username (empty over plain text).
func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := s.misbehave(ctx); err != nil {
		return nil, err
	}
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	if size := req.GetResponseSize(); size < 0 || size > maxResponseSize {
		return nil, status.Errorf(codes.InvalidArgument, "response_size %d: must be within 0-%d", size, maxResponseSize)
	}
	resp := &testpb.SimpleResponse{
		Hostname: s.hostname,
		ServerId: s.version,
		Payload:  &testpb.Payload{Body: make([]byte, req.GetResponseSize())},
	}
	if req.GetFillUsername() {
		resp.Username = callerIdentity(ctx)
	}
	return resp, nil
}

// callerIdentity is the URI SAN of the caller's TLS client certificate (its SPIFFE ID under mutual
// TLS), "" over plain text.
func callerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 || len(info.State.PeerCertificates[0].URIs) == 0 {
		return ""
	}
	return info.State.PeerCertificates[0].URIs[0].String()
}

// misbehave waits the configured latency, then fails the call if the error schedule says so.
func (s *testService) misbehave(ctx context.Context) error {
	if d := s.faults.delay(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if s.faults.fail() {
		return status.Error(codes.Unavailable, fmt.Sprintf("demoapp %s (version %s): injected failure", s.hostname, s.version))
	}
	return nil
}
