// Package zerotrust_test checks the ZeroTrust identity controller on real parts: the test API
// server, the real cert-manager controllers (internal/testcertmanager) with a CA ClusterIssuer,
// and the operator. Pods are API objects only (no kubelet): the controller needs their labels and
// service accounts.
package zerotrust_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// operatorNamespace is the operator's own namespace: a ZeroTrust there with an empty selector is
// mesh-wide.
const operatorNamespace = "zt-operator"

var (
	env *testenv.Env
	k8s client.Client
	cm  *testcertmanager.CertManager
	ca  *testcertmanager.CA
	// xdsAddr is the operator's xDS server (plain text), for the proxies of strict_test.go.
	xdsAddr string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the ZeroTrust system tests in -short mode")
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
	k8s = env.Client

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cm, err = testcertmanager.New(ctx, env, testcertmanager.Options{MinimumBackoff: time.Second}); err != nil {
		return fail(err)
	}
	defer func() {
		if err := cm.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	if ca, err = cm.CreateCA(ctx, "mesh-ca"); err != nil {
		return fail(err)
	}
	// The replicas report their connected proxies in the operator's namespace.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return fail(err)
	}
	// The operator starts after cert-manager's CRDs are installed, so it watches Certificates.
	xdsAddr = testmesh.FreeAddr()
	operator, err := testmesh.StartOperator(env.Config, manager.Options{
		SkipRolloutController: true,
		Namespace:             operatorNamespace,
		GracefulShutdown:      5 * time.Second,
		XDSPlaintextAddr:      xdsAddr,
		Debounce:              20 * time.Millisecond,
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
