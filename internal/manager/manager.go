package manager

import (
	"crypto/tls"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// NewScheme returns a scheme with the Kubernetes built-in kinds and Sluice's own.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(meshv1alpha1.AddToScheme(s))
	return s
}

// New builds a manager with metrics, health probes, leader election, a webhook server, and the
// mesh: the xDS server and the controllers that feed it.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if err := o.xdsListeners(); err != nil {
		return nil, err
	}
	nacks := &nackForwarder{}
	xdsServer, err := newXDSServer(nacks, o.Registerer)
	if err != nil {
		return nil, err
	}
	var tlsOpts []func(*tls.Config)
	if !o.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}

	metrics := metricsserver.Options{
		BindAddress:   o.MetricsAddr,
		SecureServing: o.SecureMetrics,
		TLSOpts:       tlsOpts,
		// The xDS debug pages sit behind the same authentication and authorization as /metrics.
		ExtraHandlers: debugHandlers(xdsServer),
	}
	if o.SecureMetrics {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	gracefulShutdown := o.GracefulShutdown
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  NewScheme(),
		Cache:                   cacheOptions(),
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// The lease is released on a clean stop so a new leader takes over at once.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &gracefulShutdown,
		Controller:                    config.Controller{SkipNameValidation: &o.SkipControllerNameValidation},
		// Without a GetCertificate in TLSOpts the server reloads a renewed tls.crt/tls.key itself
		// (controller-runtime's certwatcher; docs/webhooks.md#certificates).
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    o.WebhookHost,
			Port:    o.WebhookPort,
			CertDir: o.WebhookCertDir,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	if err := addMesh(mgr, xdsServer, nacks, o); err != nil {
		return nil, err
	}
	if err := addCRDWebhooks(mgr, o); err != nil {
		return nil, err
	}
	if err := addInjection(mgr, o); err != nil {
		return nil, err
	}
	return mgr, nil
}
