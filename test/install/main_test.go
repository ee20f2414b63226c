// Package install_test checks the in-cluster install, config/default, as kustomize renders it:
// every object is valid for the real API server (server-side dry run, with cert-manager's and the
// prometheus-operator's CRDs installed), its parts name each other consistently, and the manager
// works with nothing but the RBAC it grants (run impersonating its ServiceAccount).
package install_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

var (
	// rendered is `kustomize build config/default`, in its order.
	rendered []*unstructured.Unstructured
	// olmExtras is `kustomize build config/olm`: what an OLM install applies besides the bundle.
	olmExtras []*unstructured.Unstructured
	// env is the test API server; nil in -short mode, where only the tests of the rendered YAML run.
	env *testenv.Env
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	var err error
	if rendered, err = render("config/default"); err != nil {
		return fail(err)
	}
	if olmExtras, err = render("config/olm"); err != nil {
		return fail(err)
	}
	if testing.Short() {
		return m.Run()
	}
	testmesh.SetLogger()
	// OwnerReferencesPermissionEnforcement is off by default but on in some clusters (OpenShift):
	// with it, setting an owner reference that blocks the owner's deletion needs RBAC too.
	env, err = testenv.StartWith(testenv.Options{AdmissionPlugins: []string{"OwnerReferencesPermissionEnforcement"}})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = env.Stop() }()
	if err := installForeignCRDs(); err != nil {
		return fail(err)
	}
	return m.Run()
}

// installForeignCRDs installs the CRDs of the kinds config/default uses but does not define:
// cert-manager's (Issuer, Certificate) and the prometheus-operator's ServiceMonitor, each from
// its project's Go module.
func installForeignCRDs() error {
	certManager, err := testcertmanager.Dir()
	if err != nil {
		return err
	}
	promOperator, err := repo.Tool("PROMETHEUS_OPERATOR_CRDS", "prometheus-operator-crds.sh")
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{
			filepath.Join(certManager, "crds"),
			filepath.Join(promOperator, "monitoring.coreos.com_servicemonitors.yaml"),
		},
		ErrorIfPathMissing: true,
		MaxTime:            time.Minute,
		PollInterval:       50 * time.Millisecond,
	})
	if err != nil {
		return fmt.Errorf("installing cert-manager's and the ServiceMonitor's CRDs: %w", err)
	}
	return nil
}

// needAPIServer skips a test in -short mode.
func needAPIServer(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("needs the test API server; skipped in -short mode")
	}
}

// ensureNamespace creates (for real) the install's namespace from the rendered Namespace, with its
// Pod Security labels: namespaced objects are admitted only into an existing namespace.
func ensureNamespace(t *testing.T) {
	t.Helper()
	ns := find(t, "Namespace", "", installNamespace).DeepCopy()
	if err := env.Client.Apply(context.Background(), applyConfig(ns), fieldOwner, forceOwnership); err != nil {
		t.Fatalf("creating namespace %s: %v", installNamespace, err)
	}
}
