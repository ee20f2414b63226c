// Package mtls_test sends real gRPC traffic through the operator with mutual TLS between proxyless
// gRPC clients and xDS-enabled gRPC servers: certificates issued by cert-manager's real
// controllers from a CA ClusterIssuer, written to files for gRPC's file_watcher certificate
// provider, and ZeroTrusts deciding the mode.
//
// The test binary runs in a network namespace where pod IPs are local (internal/podnet), so the
// servers listen on their pod IPs, as their server listeners require; where that is not possible,
// the tests skip.
package mtls_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/podnet"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

var (
	env     *testenv.Env
	cm      *testcertmanager.CertManager
	xdsAddr string
	// podnetErr is why pod IPs are not local here (nil when they are); every test skips with it.
	podnetErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the mTLS system tests in -short mode")
		return
	}
	// The namespace has no way out, so the tools are found (or built) before entering it.
	podnetErr = podnet.EnterAfter(func() error {
		assets, err := testenv.Assets()
		if err != nil {
			return err
		}
		if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
			return err
		}
		dir, err := testcertmanager.Dir()
		if err != nil {
			return err
		}
		return os.Setenv("CERT_MANAGER_DIR", dir)
	})
	if podnetErr != nil {
		if !errors.Is(podnetErr, podnet.ErrUnavailable) {
			fmt.Fprintln(os.Stderr, podnetErr)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "pod IPs are not local, the mTLS tests will skip:", podnetErr)
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	testmesh.SetLogger()
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cm, err = testcertmanager.New(ctx, env, testcertmanager.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cm.Stop() }()

	xdsAddr = testmesh.FreeAddr()
	op, err := testmesh.StartOperator(env.Config, manager.Options{
		XDSPlaintextAddr:      xdsAddr,
		Debounce:              20 * time.Millisecond,
		GracefulShutdown:      5 * time.Second,
		SkipRolloutController: true,
		TrustBundleRetention:  rotationRetention,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer op.Stop()
	return m.Run()
}
