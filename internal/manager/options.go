// Package manager builds the Sluice controller manager from its command-line options.
package manager

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/webhooks/injection"
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
	// WebhookHost is the address the admission webhook server listens on; empty means all.
	WebhookHost string
	// WebhookPort is where the admission webhook server listens; 0 turns it off (no webhooks).
	WebhookPort int
	// WebhookCertDir holds tls.crt and tls.key for the webhook server.
	WebhookCertDir string
	// EnableHTTP2 allows HTTP/2 on the metrics and webhook servers. Off by default because of the
	// HTTP/2 stream-reset and rapid-reset vulnerabilities (CVE-2023-44487, CVE-2023-39325).
	EnableHTTP2 bool
	// GracefulShutdown bounds how long running work may take to finish after a stop signal.
	GracefulShutdown time.Duration

	// XDSAddr is where every replica serves xDS (ADS, state of the world and delta) over mutual
	// TLS, from XDSTLSDir; "" or "0" serves none.
	XDSAddr string
	// XDSTLSDir holds the xDS server's tls.crt and tls.key and the ca.crt that client certificates
	// must chain to; the files are read again when they change.
	XDSTLSDir string
	// XDSPlaintextAddr, when set, also serves xDS in plain text (for local development and tests):
	// nodes are then who they claim to be.
	XDSPlaintextAddr string
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
	// ReplicaName names this replica's report of connected proxies; BindFlags defaults it to
	// POD_NAME, else the host name.
	ReplicaName string
	// TrustBundleRetention is how long a CA certificate stays in the trust bundles once no
	// identity Secret carries it.
	TrustBundleRetention time.Duration

	// Injection is how pods get the mesh: images, the xDS Service, the sidecar's resources.
	Injection injection.Config

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

// xdsListeners checks the xDS flags: mutual TLS needs a TLS directory, and serving nothing at all
// must be asked for (--xds-bind-address=0).
func (o *Options) xdsListeners() error {
	tlsOn := o.XDSAddr != "" && o.XDSAddr != "0"
	if tlsOn && o.XDSTLSDir == "" && o.XDSPlaintextAddr == "" {
		return fmt.Errorf("the xDS server on --xds-bind-address %s serves mutual TLS and needs --xds-tls-dir "+
			"(a directory with tls.crt, tls.key and ca.crt); for local development set --xds-plaintext-bind-address instead, "+
			"or --xds-bind-address=0 to serve no xDS", o.XDSAddr)
	}
	if !tlsOn && o.XDSTLSDir != "" {
		return fmt.Errorf("--xds-tls-dir %s is set but --xds-bind-address is off; set an address to serve mutual TLS on", o.XDSTLSDir)
	}
	return nil
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
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "Address the admission webhook server binds; empty means every address.")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "Port of the admission webhook server; 0 turns the webhooks off.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "",
		"Directory with the webhook server's tls.crt and tls.key; empty means the controller-runtime default.")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics and webhook servers.")
	fs.DurationVar(&o.GracefulShutdown, "graceful-shutdown-timeout", 30*time.Second,
		"How long running work may take to finish after SIGTERM.")
	fs.StringVar(&o.XDSAddr, "xds-bind-address", ":15010",
		"Address of the xDS server (ADS) over mutual TLS from --xds-tls-dir, served by every replica; 0 disables it.")
	fs.StringVar(&o.XDSTLSDir, "xds-tls-dir", "",
		"Directory with the xDS server's tls.crt, tls.key and the ca.crt client certificates must chain to (re-read when they change).")
	fs.StringVar(&o.XDSPlaintextAddr, "xds-plaintext-bind-address", "",
		"Also serve xDS in plain text on this address, trusting what nodes claim: for local development only.")
	fs.BoolVar(&o.AccessLog, "access-log", true, "Write a JSON access log line per request on every Envoy sidecar.")
	fs.StringVar(&o.TracingCollector, "tracing-collector", "",
		"host:port of an OpenTelemetry collector (OTLP/gRPC) that sidecars send spans to; empty turns tracing off.")
	fs.DurationVar(&o.Debounce, "xds-debounce", 100*time.Millisecond,
		"How long a change waits for more changes before the mesh is translated and pushed.")
	fs.StringVar(&o.Namespace, "namespace", defaultNamespace(),
		"The operator's own namespace, where a ZeroTrust with an empty selector is mesh-wide.")
	fs.StringVar(&o.ReplicaName, "replica-name", defaultReplicaName(),
		"This replica's name, unique among the replicas: it names the ConfigMap in which it reports its connected proxies.")
	fs.DurationVar(&o.TrustBundleRetention, "trust-bundle-retention", zerotrust.DefaultTrustBundleRetention,
		"How long a CA certificate stays in the trust bundles once no identity Secret carries it (the kubelet updates Secret and ConfigMap volumes at different times).")
	o.Injection = injection.DefaultConfig()
	o.Injection.BindFlags(fs)
	fs.StringVar(&o.PrometheusAddress, "prometheus-address", "http://prometheus.monitoring:9090",
		"Prometheus HTTP API that Rollout analysis queries unless a Rollout names its own.")
	fs.DurationVar(&o.AnalysisTimeout, "analysis-timeout", 15*time.Second,
		"How long one Rollout's analysis check (all its queries) may take; past it the check is inconclusive.")
}

// defaultReplicaName is POD_NAME (the downward API), else the host name (a pod's name in a cluster).
func defaultReplicaName() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		return name
	}
	return "manager"
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
