// Package rollout_test releases canaries end to end on real parts: the test API server with
// kube-controller-manager and kwok (internal/testcluster) running the Deployments, a demo app per
// pod exposing gRPC's own data-plane metrics, a real Prometheus scraping them, the operator
// (Rollout controller, analysis, xDS server), and gRPC's own xDS client as the users.
package rollout_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/internal/testprom"
)

// scrapeInterval is every Prometheus's: a few scrapes fit in each analysis interval.
const scrapeInterval = 500 * time.Millisecond

var (
	env     *testenv.Env
	k8s     client.Client
	cluster *testcluster.Cluster
	prom    *testprom.Server
	// xdsAddr is where the operator serves xDS; operator is the running one.
	xdsAddr  string
	operator *testmesh.Operator
)

// loopbackDialer reaches a pod IP on its loopback address.
var loopbackDialer = testcluster.DialLoopback

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the Rollout system tests in -short mode")
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
	if cluster, err = testcluster.New(ctx, env, testcluster.Options{}); err != nil {
		return fail(err)
	}
	defer func() { _ = cluster.Stop() }()
	if prom, err = testprom.Start(ctx, testprom.Options{ScrapeInterval: scrapeInterval}); err != nil {
		return fail(err)
	}
	defer func() { _ = prom.Stop() }()
	if err := scrapes.Watch(ctx, prom); err != nil {
		return fail(err)
	}

	xdsAddr = testmesh.FreeAddr()
	if operator, err = startOperator(); err != nil {
		return fail(err)
	}
	defer func() { operator.Stop() }()
	return m.Run()
}

func startOperator() (*testmesh.Operator, error) {
	return testmesh.StartOperator(env.Config, manager.Options{
		XDSPlaintextAddr:  xdsAddr,
		Debounce:          20 * time.Millisecond,
		GracefulShutdown:  5 * time.Second,
		PrometheusAddress: prom.URL(),
		AnalysisTimeout:   5 * time.Second,
	})
}

// restartOperator stops the operator and starts a new one, as a crash and a new pod would.
func restartOperator(t *testing.T) {
	t.Helper()
	operator.Stop()
	var err error
	operator, err = startOperator()
	must(t, err)
}
