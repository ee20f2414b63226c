package manager

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/controllers/rollout/analysis"
	"github.com/sluice-mesh/sluice/internal/proxyreport"
	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/server"
)

// nackForwarder hands NACKs to the mesh reconciler, which is built after the server.
type nackForwarder struct {
	target atomic.Pointer[controllers.MeshReconciler]
}

func (f *nackForwarder) forward(n server.NACK) {
	if r := f.target.Load(); r != nil {
		r.NACKed(n.Message, n.Resources)
	}
}

func newXDSServer(nacks *nackForwarder, reg prometheus.Registerer) (*server.Server, error) {
	s, err := server.New(server.Options{OnNACK: nacks.forward, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("building the xDS server: %w", err)
	}
	return s, nil
}

func debugHandlers(s *server.Server) map[string]http.Handler {
	h := s.DebugHandler()
	return map[string]http.Handler{server.DebugProxiesPath: h, server.DebugNACKsPath: h, server.DebugConfigPath: h}
}

// addMesh adds the xDS server (every replica), the mesh reconciler that feeds it (every replica)
// and the status, ZeroTrust identity and trust bundle reconcilers (leader only); every replica
// reports its connected proxies (internal/proxyreport) for the leader's StrictReady.
func addMesh(mgr ctrl.Manager, xdsServer *server.Server, nacks *nackForwarder, o Options) error {
	feedback := controllers.NewFeedback()
	namespace := o.Namespace
	if namespace == "" {
		namespace = DefaultNamespace
	}
	mesh := &controllers.MeshReconciler{
		OperatorNamespace: namespace,
		Reader:            mgr.GetClient(),
		Publisher:         xdsServer,
		Feedback:          feedback,
		EnvoyOptions: envoy.Options{
			AccessLog:        o.AccessLog,
			TracingCollector: o.TracingCollector,
		},
		Debounce: o.Debounce,
	}
	nacks.target.Store(mesh)
	if err := mesh.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the mesh controller: %w", err)
	}
	status := &controllers.TrafficPolicyStatusReconciler{Client: mgr.GetClient(), Feedback: feedback,
		Recorder: mgr.GetEventRecorder("sluice-trafficpolicy")}
	if err := status.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the TrafficPolicy status controller: %w", err)
	}
	if !o.SkipRolloutController {
		reg := o.Registerer
		if reg == nil {
			reg = ctrlmetrics.Registry
		}
		rolloutMetrics, err := controllers.NewRolloutMetrics(reg)
		if err != nil {
			return fmt.Errorf("registering the Rollout metrics: %w", err)
		}
		rollouts := &controllers.RolloutReconciler{
			Client:   mgr.GetClient(),
			Feedback: feedback,
			Proxies:  xdsServer,
			Analysis: &analysis.Runner{DefaultAddress: o.PrometheusAddress, Timeout: o.AnalysisTimeout},
			Recorder: mgr.GetEventRecorder("sluice-rollout"),
			Metrics:  rolloutMetrics,
		}
		if err := rollouts.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the Rollout controller: %w", err)
		}
	}
	identities := &controllers.ZeroTrustReconciler{
		Client:            mgr.GetClient(),
		Recorder:          mgr.GetEventRecorder("sluice-zerotrust"),
		OperatorNamespace: namespace,
	}
	if err := identities.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ZeroTrust identity controller: %w", err)
	}
	bundles := &controllers.TrustBundleReconciler{
		Client:            mgr.GetClient(),
		OperatorNamespace: namespace,
		Retention:         o.TrustBundleRetention,
	}
	if err := bundles.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the trust bundle controller: %w", err)
	}
	serveTLS := o.XDSAddr != "" && o.XDSAddr != "0" && o.XDSTLSDir != ""
	if !serveTLS && o.XDSPlaintextAddr == "" {
		return nil
	}
	replica := o.ReplicaName
	if replica == "" {
		replica = defaultReplicaName()
	}
	err := mgr.Add(&proxyreport.Reporter{
		Client:    mgr.GetClient(),
		Namespace: namespace,
		Replica:   replica,
		NodeIDs:   func() []string { return nodeIDs(xdsServer) },
	})
	if err != nil {
		return fmt.Errorf("adding the proxy reporter: %w", err)
	}
	if serveTLS {
		if err := serveXDS(mgr, o.XDSAddr, func(ctx context.Context, lis net.Listener) error {
			return xdsServer.ServeMTLS(ctx, lis, o.XDSTLSDir)
		}); err != nil {
			return err
		}
	}
	if o.XDSPlaintextAddr != "" {
		return serveXDS(mgr, o.XDSPlaintextAddr, xdsServer.Serve)
	}
	return nil
}

// serveXDS serves xDS on addr on every replica.
func serveXDS(mgr ctrl.Manager, addr string, serve func(context.Context, net.Listener) error) error {
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening for xDS on %s: %w", addr, err)
		}
		return serve(ctx, lis)
	}))
}

// nodeIDs are the node IDs of the proxies connected to this replica's xDS server.
func nodeIDs(s *server.Server) []string {
	proxies := s.Proxies()
	ids := make([]string, len(proxies))
	for i, p := range proxies {
		ids[i] = p.NodeID
	}
	return ids
}

// everyReplica is a runnable that runs whether or not this replica holds the leader lease.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
