package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	xdsstream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Serve serves xDS on lis until ctx ends, then stops gracefully: the xDS streams end (proxies see
// their stream close and reconnect, to this replica or another), in-flight sends finish, and after
// Options.ShutdownTimeout the connections are closed regardless. It returns nil after a stop caused
// by ctx, or the error that ended serving otherwise.
//
// Served: ADS, state of the world and delta, and the per-type LDS, RDS, CDS, EDS and SDS services
// (the ordering guarantees of Publish hold on ADS only).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	return s.serve(ctx, lis)
}

// serve is Serve with extra gRPC server options (ServeMTLS's credentials).
func (s *Server) serve(ctx context.Context, lis net.Listener, extra ...grpc.ServerOption) error {
	// The xDS servers end their streams when this context ends.
	xdsCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := cacheLogger(s.log)
	cb := callbacks{t: s.proxies, serve: s.proxies.serves.Add(1)}
	h := &handlers{
		srv: s,
		// Ordered ADS sends the responses of every type through one queue, in the order the caches
		// produced them: a stream sees the clusters of a Publish before its routes.
		sotw:  sotw.NewServer(xdsCtx, watcher{s}, cb, sotw.WithOrderedADS(), sotw.WithLogger(logger)),
		delta: delta.NewServer(xdsCtx, watcher{s}, cb, delta.WithLogger(logger)),
	}
	gs := grpc.NewServer(append(s.grpcOptions(), extra...)...)
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, h)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, &ldsHandler{h: h})
	routeservice.RegisterRouteDiscoveryServiceServer(gs, &rdsHandler{h: h})
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, &cdsHandler{h: h})
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, &edsHandler{h: h})
	secretservice.RegisterSecretDiscoveryServiceServer(gs, &sdsHandler{h: h})

	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	s.log.V(1).Info("Serving xDS", "address", lis.Addr().String())

	select {
	case err := <-served:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}
	cancel()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.log.Info("xDS graceful stop timed out; closing connections", "timeout", s.opts.ShutdownTimeout)
		gs.Stop()
		<-stopped
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
	}
	return nil
}

func (s *Server) grpcOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newRequestCodec()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             s.opts.KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  s.opts.KeepaliveTime,
			Timeout:               s.opts.KeepaliveTimeout,
			MaxConnectionAge:      s.opts.MaxConnectionAge,
			MaxConnectionAgeGrace: s.opts.MaxConnectionAgeGrace,
		}),
	}
	return append(opts, s.opts.ServerOptions...)
}

// handlers route the gRPC services to the go-control-plane servers, each stream through its
// session (session.go).
type handlers struct {
	srv   *Server
	sotw  sotw.Server
	delta delta.Server
}

// open authenticates a new stream and opens its session (auth.go); a refused stream ends at once.
func (h *handlers) open(ctx context.Context, typeURL string) (*session, error) {
	refused := h.srv.refusals(ctx)
	auth, r := authFromPeer(ctx)
	if r != nil {
		refused(r)
		return nil, r.err
	}
	if err := h.srv.waitReady(ctx); err != nil {
		return nil, err
	}
	return h.srv.sessions.open(defaultType(typeURL), h.srv.sets, auth, refused), nil
}

// serveSotw serves a state-of-the-world stream of typeURL (resource.AnyType for ADS).
func (h *handlers) serveSotw(st xdsstream.Stream, typeURL string) error {
	s, err := h.open(st.Context(), typeURL)
	if err != nil {
		return err
	}
	defer h.srv.sessions.close(s)
	ctx := context.WithValue(st.Context(), sessionKey{}, s)
	return h.sotw.StreamHandler(&sotwStream{Stream: st, s: s, ctx: ctx}, typeURL)
}

// serveDelta serves a delta stream of typeURL (resource.AnyType for ADS).
func (h *handlers) serveDelta(st xdsstream.DeltaStream, typeURL string) error {
	s, err := h.open(st.Context(), typeURL)
	if err != nil {
		return err
	}
	defer h.srv.sessions.close(s)
	ctx := context.WithValue(st.Context(), sessionKey{}, s)
	return h.delta.DeltaStreamHandler(&deltaStream{DeltaStream: st, s: s, ctx: ctx}, typeURL)
}

// defaultType is the type of a per-type service's requests, "" for ADS.
func defaultType(typeURL string) string {
	if typeURL == resource.AnyType {
		return ""
	}
	return typeURL
}

func (h *handlers) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return h.serveSotw(st, resource.AnyType)
}

func (h *handlers) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return h.serveDelta(st, resource.AnyType)
}

type ldsHandler struct {
	listenerservice.UnimplementedListenerDiscoveryServiceServer
	h *handlers
}

func (l *ldsHandler) StreamListeners(st listenerservice.ListenerDiscoveryService_StreamListenersServer) error {
	return l.h.serveSotw(st, resource.ListenerType)
}

func (l *ldsHandler) DeltaListeners(st listenerservice.ListenerDiscoveryService_DeltaListenersServer) error {
	return l.h.serveDelta(st, resource.ListenerType)
}

type rdsHandler struct {
	routeservice.UnimplementedRouteDiscoveryServiceServer
	h *handlers
}

func (r *rdsHandler) StreamRoutes(st routeservice.RouteDiscoveryService_StreamRoutesServer) error {
	return r.h.serveSotw(st, resource.RouteType)
}

func (r *rdsHandler) DeltaRoutes(st routeservice.RouteDiscoveryService_DeltaRoutesServer) error {
	return r.h.serveDelta(st, resource.RouteType)
}

type cdsHandler struct {
	clusterservice.UnimplementedClusterDiscoveryServiceServer
	h *handlers
}

func (c *cdsHandler) StreamClusters(st clusterservice.ClusterDiscoveryService_StreamClustersServer) error {
	return c.h.serveSotw(st, resource.ClusterType)
}

func (c *cdsHandler) DeltaClusters(st clusterservice.ClusterDiscoveryService_DeltaClustersServer) error {
	return c.h.serveDelta(st, resource.ClusterType)
}

type edsHandler struct {
	endpointservice.UnimplementedEndpointDiscoveryServiceServer
	h *handlers
}

func (e *edsHandler) StreamEndpoints(st endpointservice.EndpointDiscoveryService_StreamEndpointsServer) error {
	return e.h.serveSotw(st, resource.EndpointType)
}

func (e *edsHandler) DeltaEndpoints(st endpointservice.EndpointDiscoveryService_DeltaEndpointsServer) error {
	return e.h.serveDelta(st, resource.EndpointType)
}

type sdsHandler struct {
	secretservice.UnimplementedSecretDiscoveryServiceServer
	h *handlers
}

func (s *sdsHandler) StreamSecrets(st secretservice.SecretDiscoveryService_StreamSecretsServer) error {
	return s.h.serveSotw(st, resource.SecretType)
}

func (s *sdsHandler) DeltaSecrets(st secretservice.SecretDiscoveryService_DeltaSecretsServer) error {
	return s.h.serveDelta(st, resource.SecretType)
}

// waitReady holds a new stream until the first snapshot is published. A replica that has just
// started knows no resource yet: answering then would tell a reconnecting proxy that its listeners
// and clusters do not exist, and it would drop the configuration it is serving with.
func (s *Server) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return status.Error(codes.Unavailable, "the xDS server has no configuration yet")
	}
}
