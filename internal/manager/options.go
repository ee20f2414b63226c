// Package manager builds the Sluice controller manager from its command-line options.
package manager

import (
	"flag"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the manager's settings, bound to command-line flags by BindFlags.
type Options struct {
	// MetricsAddr serves Prometheus metrics; "0" turns the endpoint off.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS behind Kubernetes authentication and authorization.
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz.
	ProbeAddr string
	// LeaderElect makes one replica at a time do the writing work (status updates, rollouts).
	LeaderElect bool
	// LeaderElectionNamespace holds the lease; empty means the namespace the manager runs in.
	LeaderElectionNamespace string
	// WebhookPort is where the admission webhook server listens.
	WebhookPort int
	// WebhookCertDir holds tls.crt and tls.key for the webhook server.
	WebhookCertDir string
	// EnableHTTP2 allows HTTP/2 on the metrics and webhook servers. Off by default because of the
	// HTTP/2 stream-reset and rapid-reset vulnerabilities (CVE-2023-44487, CVE-2023-39325).
	EnableHTTP2 bool
	// GracefulShutdown bounds how long running work may take to finish after a stop signal.
	GracefulShutdown time.Duration

	// XDSAddr is where every replica serves xDS (ADS, state of the world and delta).
	XDSAddr string
	// AccessLog turns on Envoy's JSON access log on every sidecar.
	AccessLog bool
	// TracingCollector is host:port of an OpenTelemetry collector; empty turns tracing off.
	TracingCollector string
	// Debounce is how long a change waits for more before the mesh is translated.
	Debounce time.Duration

	// Namespace is the operator's own namespace: a ZeroTrust there with an empty selector is
	// mesh-wide. BindFlags defaults it to POD_NAMESPACE, else the namespace of the pod's service
	// account, else sluice-system.
	Namespace string

	// PrometheusAddress is the Prometheus HTTP API that Rollout analysis queries, unless a
	// Rollout names its own in spec.analysis.prometheus.
	PrometheusAddress string
	// AnalysisTimeout bounds one analysis check (every query of one Rollout).
	AnalysisTimeout time.Duration

	// Registerer receives the xDS server's and the Rollout controller's metrics; nil means
	// controller-runtime's registry (the one /metrics serves). Tests that build several managers
	// in one process give each its own.
	Registerer prometheus.Registerer
	// SkipRolloutController leaves the Rollout controller out, for tests of the xDS pipeline that
	// set a Rollout's status by hand.
	SkipRolloutController bool
	// SkipControllerNameValidation lets tests build several managers in one process.
	SkipControllerNameValidation bool
}

// DefaultNamespace is the operator's namespace when nothing says otherwise (config/default's).
const DefaultNamespace = "sluice-system"

// LeaderElectionID names the lease the replicas compete for.
const LeaderElectionID = "sluice.mesh.sluice.dev"

// BindFlags registers the options on fs with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443",
		"Address of the metrics endpoint (HTTPS with authn/authz by default); 0 disables it.")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, allowing only callers that may 'get' the /metrics non-resource URL.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true,
		"Elect a leader so only one replica writes status; every replica still serves xDS.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader-election lease; empty means the manager's own namespace.")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "",
		"Directory with the webhook server's tls.crt and tls.key; empty means the controller-runtime default.")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics and webhook servers.")
	fs.DurationVar(&o.GracefulShutdown, "graceful-shutdown-timeout", 30*time.Second,
		"How long running work may take to finish after SIGTERM.")
	fs.StringVar(&o.XDSAddr, "xds-bind-address", ":15010", "Address of the xDS server (ADS), served by every replica.")
	fs.BoolVar(&o.AccessLog, "access-log", true, "Write a JSON access log line per request on every Envoy sidecar.")
	fs.StringVar(&o.TracingCollector, "tracing-collector", "",
		"host:port of an OpenTelemetry collector (OTLP/gRPC) that sidecars send spans to; empty turns tracing off.")
	fs.DurationVar(&o.Debounce, "xds-debounce", 100*time.Millisecond,
		"How long a change waits for more changes before the mesh is translated and pushed.")
	fs.StringVar(&o.Namespace, "namespace", defaultNamespace(),
		"The operator's own namespace, where a ZeroTrust with an empty selector is mesh-wide.")
	fs.StringVar(&o.PrometheusAddress, "prometheus-address", "http://prometheus.monitoring:9090",
		"Prometheus HTTP API that Rollout analysis queries unless a Rollout names its own.")
	fs.DurationVar(&o.AnalysisTimeout, "analysis-timeout", 15*time.Second,
		"How long one Rollout's analysis check (all its queries) may take; past it the check is inconclusive.")
}

// defaultNamespace is the namespace the manager runs in: POD_NAMESPACE (the downward API), else
// the in-cluster service account's namespace, else sluice-system.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if data, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(data)); ns != "" {
			return ns
		}
	}
	return DefaultNamespace
}
