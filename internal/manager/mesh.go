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
// and the status and ZeroTrust identity reconcilers (leader only).
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
	if o.XDSAddr == "" || o.XDSAddr == "0" {
		return nil
	}
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		lis, err := net.Listen("tcp", o.XDSAddr)
		if err != nil {
			return fmt.Errorf("listening for xDS on %s: %w", o.XDSAddr, err)
		}
		return xdsServer.Serve(ctx, lis)
	}))
}

// everyReplica is a runnable that runs whether or not this replica holds the leader lease.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
