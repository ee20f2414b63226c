// Package demoapp is the mesh's demo and test workload: a gRPC server of grpc.testing.TestService
// that says which pod and version answered, fails a chosen share of calls and adds latency on
// demand, and exposes gRPC's own OpenTelemetry metrics on /metrics for Prometheus, as a proxyless
// gRPC server in the mesh does. docs/data-plane-metrics.md lists the series.
package demoapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
)

// grpcServer is what Server needs of a plain or an xDS-enabled gRPC server.
type grpcServer interface {
	grpc.ServiceRegistrar
	Serve(net.Listener) error
	Stop()
	GracefulStop()
}

// Server is a running demo app.
type Server struct {
	grpc    grpcServer
	grpcLis net.Listener
	http    *http.Server
	httpLis net.Listener
	metrics *metrics
	faults  *faults

	stopOnce sync.Once
	stopErr  error
}

// Start serves gRPC and /metrics, each on its listener (or a new one on its address), and returns
// at once. ctx bounds the start only; call Stop when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Hostname, opts.Version)
	if err != nil {
		return nil, err
	}
	s := &Server{metrics: m, faults: &faults{}}
	s.faults.percent.Store(int64(opts.ErrorPercent))
	s.faults.latency.Store(int64(opts.Latency))

	if s.grpcLis, err = listen(opts.GRPCListener, opts.GRPCAddr); err != nil {
		_ = m.shutdown(ctx)
		return nil, err
	}
	if s.httpLis, err = listen(opts.MetricsListener, opts.MetricsAddr); err != nil {
		_ = s.grpcLis.Close()
		_ = m.shutdown(ctx)
		return nil, err
	}

	serverOpts := append([]grpc.ServerOption{m.serverOption()}, opts.ServerOptions...)
	if opts.XDS {
		// TLS when the control plane's listener asks for it (a STRICT ZeroTrust), plain text otherwise.
		creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
		if err != nil {
			_ = s.grpcLis.Close()
			_ = s.httpLis.Close()
			_ = m.shutdown(ctx)
			return nil, err
		}
		xs, err := xds.NewGRPCServer(append(serverOpts, grpc.Creds(creds))...)
		if err != nil {
			_ = s.grpcLis.Close()
			_ = s.httpLis.Close()
			_ = m.shutdown(ctx)
			return nil, fmt.Errorf("creating the xDS gRPC server: %w", err)
		}
		s.grpc = xs
	} else {
		s.grpc = grpc.NewServer(serverOpts...)
	}
	testpb.RegisterTestServiceServer(s.grpc, &testService{hostname: opts.Hostname, version: opts.Version, faults: s.faults})
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.handler)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go func() { _ = s.grpc.Serve(s.grpcLis) }()
	go func() { _ = s.http.Serve(s.httpLis) }()
	return s, nil
}

// Addr is the gRPC address, host:port.
func (s *Server) Addr() string { return s.grpcLis.Addr().String() }

// MetricsAddr is the host:port serving /metrics, the target to scrape.
func (s *Server) MetricsAddr() string { return s.httpLis.Addr().String() }

// SetErrorPercent changes the share of calls (0-100) that fail with codes.Unavailable, from the
// next call on.
func (s *Server) SetErrorPercent(p int) error {
	if err := validPercent(p); err != nil {
		return err
	}
	s.faults.percent.Store(int64(p))
	return nil
}

// SetLatency changes the delay added to every call, from the next call on.
func (s *Server) SetLatency(d time.Duration) error {
	if d < 0 {
		return errors.New("latency must not be negative")
	}
	s.faults.latency.Store(int64(d))
	return nil
}

// stopGrace bounds how long Stop waits for calls in flight.
const stopGrace = 2 * time.Second

// Stop refuses new calls, lets those in flight finish (for up to stopGrace), closes both
// listeners and shuts the metrics down. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		// As a well-behaved server does on SIGTERM: refuse new calls (GOAWAY, so clients move to
		// other endpoints) and let the calls in flight finish, for a while.
		drained := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(stopGrace):
			s.grpc.Stop()
		}
		err := s.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.stopErr = errors.Join(err, s.metrics.shutdown(ctx))
	})
	return s.stopErr
}
