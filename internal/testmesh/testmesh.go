// Package testmesh has what system tests share to drive traffic through the operator: gRPC's own
// xDS client pointed at the operator's xDS server, and the operator itself.
package testmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// CertificateFiles are the PEM files of a workload's identity, as the injector mounts them: the
// certificate and key from the identity Secret (tls.crt, tls.key), the CA certificates it trusts
// from its namespace's trust bundle ConfigMap (sluice-trust-bundle, ca.crt), which holds every
// root of the trust domain, old and new, while a CA rotation is under way.
type CertificateFiles struct {
	Cert, Key, CA string
	// Refresh is how often gRPC reads the files again; zero means 10 minutes (file_watcher's
	// default).
	Refresh time.Duration
}

// BootstrapOption adds to a Bootstrap.
type BootstrapOption func(doc map[string]any)

// WithCertificates adds the certificate provider instance that Sluice's TLS contexts name
// (envoy.CertificateProviderInstance): a file_watcher over files.
func WithCertificates(files CertificateFiles) BootstrapOption {
	return func(doc map[string]any) {
		doc["certificate_providers"] = map[string]any{
			envoy.CertificateProviderInstance: map[string]any{"plugin_name": "file_watcher", "config": files.config()},
		}
	}
}

// WithMutualTLS makes the xDS channel mutual TLS with the workload's identity, as the injector
// does: gRPC's "tls" channel credentials take the same files as file_watcher (and read them again
// as it does), and the node claims the namespace and service account of the certificate, which
// the xDS server checks (docs/xds-server.md, Authentication).
func WithMutualTLS(files CertificateFiles, namespace, serviceAccount string) BootstrapOption {
	return func(doc map[string]any) {
		server := doc["xds_servers"].([]any)[0].(map[string]any)
		server["channel_creds"] = []any{map[string]any{"type": "tls", "config": files.config()}}
		meta := doc["node"].(map[string]any)["metadata"].(map[string]any)
		meta[envoy.NodeMetadataNamespace] = namespace
		meta[envoy.NodeMetadataServiceAccount] = serviceAccount
	}
}

// config is the files as the config of a file_watcher provider or of "tls" channel credentials.
func (files CertificateFiles) config() map[string]any {
	cfg := map[string]any{
		"certificate_file":    files.Cert,
		"private_key_file":    files.Key,
		"ca_certificate_file": files.CA,
	}
	if files.Refresh > 0 {
		cfg["refresh_interval"] = files.Refresh.String()
	}
	return cfg
}

// WithServerListenerTemplate sets server_listener_resource_name_template, which an xDS-enabled
// gRPC server needs (docs/xds.md).
func WithServerListenerTemplate() BootstrapOption {
	return func(doc map[string]any) {
		doc["server_listener_resource_name_template"] = envoy.ServerListenerNameTemplate
	}
}

// Bootstrap is a GRPC_XDS_BOOTSTRAP document for a proxyless gRPC client of the xDS server at
// server (host:port), in plain text unless WithMutualTLS.
func Bootstrap(server, nodeID string, opts ...BootstrapOption) []byte {
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      server,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       nodeID,
			"metadata": map[string]any{envoy.NodeMetadataFlavour: string(envoy.FlavourGRPC)},
		},
	}
	for _, o := range opts {
		o(doc)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return data
}

// Dialer opens the connection to a backend; tests map pod IPs to the loopback addresses their
// servers listen on.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Client dials xds:///<target> with gRPC's xDS client configured for this client only (its own
// bootstrap, so many clients with different node ids live in one process). The connection closes
// when the test ends. opts are added to the dial options.
func Client(t testing.TB, server, nodeID, target string, dial Dialer, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	resolver, err := xds.NewXDSResolverWithConfigForTesting(Bootstrap(server, nodeID))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver)}, opts...)
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
	}
	conn, err := grpc.NewClient("xds:///"+target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// Operator is a running manager.
type Operator struct {
	// Registry holds its xDS metrics.
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	stopped  chan struct{}
}

// StartOperator runs the manager with opts until Stop. Metrics and probes are off, controller
// names are not checked (several managers live in one process), and opts.Registerer is a fresh
// registry when nil.
func StartOperator(cfg *rest.Config, opts manager.Options) (*Operator, error) {
	reg := prometheus.NewRegistry()
	if opts.Registerer == nil {
		opts.Registerer = reg
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.ProbeAddr == "" {
		opts.ProbeAddr = "0"
	}
	opts.SkipControllerNameValidation = true
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &Operator{Registry: reg, cancel: cancel, stopped: make(chan struct{})}
	go func() {
		defer close(op.stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "operator stopped:", err)
		}
	}()
	return op, nil
}

// Stop stops the manager and waits until it has stopped.
func (o *Operator) Stop() {
	o.cancel()
	<-o.stopped
}

// FreeAddr is a free 127.0.0.1 port, for a server that must listen on the same address again.
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Eventually calls check every poll until it returns nil, and fails the test with check's last
// error once timeout has passed. Tests wait for conditions this way, not with sleeps.
func Eventually(t testing.TB, timeout, poll time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(poll)
	}
}

// SetLogger gives controller-runtime (the operator under test) a logger that prints errors only,
// or everything when SLUICE_TEST_LOG is set.
func SetLogger() {
	level := zapcore.Level(2) // errors only
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		level = -1
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(level)))
}
