// Package xdsauth_test checks the authenticated xDS channel and SDS on real parts: the test API
// server, the real cert-manager controllers issuing the workload and server certificates from a CA
// ClusterIssuer, the operator serving xDS over mutual TLS, and raw ADS streams over real TLS.
package xdsauth_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

const (
	operatorNamespace = "xa-operator"
	// serverCertificate is the xDS server's Certificate (and Secret) in operatorNamespace.
	serverCertificate = "sluice-xds"
)

var (
	env      *testenv.Env
	cm       *testcertmanager.CertManager
	ca       *testcertmanager.CA
	operator *testmesh.Operator
	xdsAddr  string
	// tlsDir is the operator's --xds-tls-dir: the server Certificate's Secret as files.
	tlsDir string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the xDS authentication system tests in -short mode")
		return
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	testmesh.SetLogger()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	var err error
	if env, err = testenv.Start(); err != nil {
		return fail(err)
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cm, err = testcertmanager.New(ctx, env, testcertmanager.Options{MinimumBackoff: time.Second}); err != nil {
		return fail(err)
	}
	defer func() { _ = cm.Stop() }()
	if ca, err = cm.CreateCA(ctx, "mesh-ca"); err != nil {
		return fail(err)
	}
	if tlsDir, err = os.MkdirTemp("", "xds-tls-"); err != nil {
		return fail(err)
	}
	defer func() { _ = os.RemoveAll(tlsDir) }()
	secret, err := issueServerCertificate(ctx)
	if err != nil {
		return fail(err)
	}
	if err := writeTLSDir(secret); err != nil {
		return fail(err)
	}
	xdsAddr = testmesh.FreeAddr()
	operator, err = testmesh.StartOperator(env.Config, manager.Options{
		XDSAddr:               xdsAddr,
		XDSTLSDir:             tlsDir,
		Namespace:             operatorNamespace,
		Debounce:              20 * time.Millisecond,
		GracefulShutdown:      5 * time.Second,
		SkipRolloutController: true,
	})
	if err != nil {
		return fail(err)
	}
	defer operator.Stop()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "cert-manager said:\n%s\n", cm.Logs())
	}
	return code
}

// issueServerCertificate has cert-manager issue the xDS server's certificate (for 127.0.0.1) from
// the mesh CA, as config/default does for the xDS Service, and returns its Secret.
func issueServerCertificate(ctx context.Context) (*corev1.Secret, error) {
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return nil, err
	}
	crt := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"secretName":  serverCertificate,
		"ipAddresses": []any{"127.0.0.1"},
		"issuerRef":   ca.IssuerRef(),
		"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256)},
		"usages":      []any{"server auth", "digital signature", "key encipherment"},
	}}}
	crt.SetGroupVersionKind(testcertmanager.CertificateGVK)
	crt.SetNamespace(operatorNamespace)
	crt.SetName(serverCertificate)
	if err := env.Client.Create(ctx, crt); err != nil {
		return nil, err
	}
	return cm.WaitCertificate(ctx, operatorNamespace, serverCertificate)
}

// writeTLSDir writes the Secret's tls.crt, tls.key and ca.crt into tlsDir, each file replaced
// atomically, as the kubelet updates a mounted Secret.
func writeTLSDir(secret *corev1.Secret) error {
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		tmp := filepath.Join(tlsDir, "."+name)
		if err := os.WriteFile(tmp, secret.Data[name], 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(tlsDir, name)); err != nil {
			return err
		}
	}
	return nil
}
