package manager_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The manager, started against a real API server, wins the leader lease, answers its health probes,
// serves metrics and the xDS debug pages only to callers RBAC allows, and stops cleanly.
func TestManagerServesProbesAndGuardsMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test API server")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	opts := manager.Options{
		MetricsAddr:             freeAddr(t),
		SecureMetrics:           true,
		ProbeAddr:               freeAddr(t),
		LeaderElect:             true,
		LeaderElectionNamespace: "default",
		WebhookPort:             0,
		GracefulShutdown:        10 * time.Second,
		XDSPlaintextAddr:        freeAddr(t),
	}
	mgr, err := manager.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()

	select {
	case <-mgr.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the manager did not win the leader lease")
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code := eventually(t, "http://"+opts.ProbeAddr+path, ""); code != http.StatusOK {
			t.Errorf("%s answered %d", path, code)
		}
	}

	metricsURL := "https://" + opts.MetricsAddr + "/metrics"
	if code := eventually(t, metricsURL, ""); code != http.StatusUnauthorized {
		t.Errorf("metrics without a token answered %d, want 401", code)
	}
	stranger := serviceAccountToken(t, env, "stranger", "")
	if code := eventually(t, metricsURL, stranger); code != http.StatusForbidden {
		t.Errorf("metrics for a service account without the metrics-reader role answered %d, want 403", code)
	}
	prometheus := serviceAccountToken(t, env, "prometheus", "metrics_reader_role.yaml")
	if code := eventually(t, metricsURL, prometheus); code != http.StatusOK {
		t.Errorf("metrics for a service account with the metrics-reader role answered %d, want 200", code)
	}
	// The xDS debug pages sit behind the same guard.
	debugURL := "https://" + opts.MetricsAddr + "/debug/xds/proxies"
	if code := eventually(t, debugURL, stranger); code != http.StatusForbidden {
		t.Errorf("the xDS debug page for a stranger answered %d, want 403", code)
	}
	debugger := serviceAccountToken(t, env, "debugger", "xds_debug_reader_role.yaml")
	if code := eventually(t, debugURL, debugger); code != http.StatusOK {
		t.Errorf("the xDS debug page for a service account with the xds-debug-reader role answered %d, want 200", code)
	}

	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("the manager stopped with %v", err)
		}
	case <-time.After(opts.GracefulShutdown + 5*time.Second):
		t.Error("the manager did not stop within its graceful shutdown timeout")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// eventually GETs url until the server answers (it may still be starting) and returns the status.
func eventually(t *testing.T, url, token string) int {
	t.Helper()
	client := &http.Client{
		Timeout: 5 * time.Second,
		// The metrics server's certificate is self-signed.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // test against a self-signed server
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serviceAccountToken creates a service account, bound to the ClusterRole in config/rbac/<roleFile>
// unless roleFile is empty, and returns a token for it.
func serviceAccountToken(t *testing.T, env *testenv.Env, name, roleFile string) string {
	t.Helper()
	var roles []*rbacv1.ClusterRole
	if roleFile != "" {
		role, err := testenv.ClusterRoleFile(roleFile)
		if err != nil {
			t.Fatal(err)
		}
		roles = append(roles, role)
	}
	token, err := env.ServiceAccountToken(context.Background(), "default", name, roles...)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// xDS is served over mutual TLS, or in plain text only when asked: with neither, the manager does
// not start, and says which flags to set.
func TestManagerRefusesXDSWithoutTLSOrPlaintext(t *testing.T) {
	_, err := manager.New(&rest.Config{Host: "https://127.0.0.1:1"}, manager.Options{XDSAddr: ":15010"})
	if err == nil || !strings.Contains(err.Error(), "--xds-tls-dir") || !strings.Contains(err.Error(), "--xds-plaintext-bind-address") {
		t.Fatalf("got %v; want an error naming --xds-tls-dir and --xds-plaintext-bind-address", err)
	}
}
