package rollout_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/internal/demoapp"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testprom"
	"github.com/sluice-mesh/sluice/xds/translate"
)

const metricsPort = 9090

// runPods plays the containers of the namespace's pods: each Running pod gets a demo app on its
// loopback address, configured by its container's environment, whose /metrics every Prometheus
// that watches the namespace scrapes with the labels a Kubernetes scrape config would add.
func runPods(t *testing.T, ns string) {
	t.Helper()
	cluster.RunPods(t, ns, func(ctx context.Context, pod *corev1.Pod) (func(), error) {
		ip, err := testcluster.LoopbackFor(pod.Status.PodIP)
		if err != nil {
			return nil, err
		}
		opts := demoapp.Options{
			Hostname:    pod.Name,
			GRPCAddr:    net.JoinHostPort(ip, strconv.Itoa(appPort)),
			MetricsAddr: net.JoinHostPort(ip, strconv.Itoa(metricsPort)),
		}
		for _, e := range pod.Spec.Containers[0].Env {
			switch e.Name {
			case envVersion:
				opts.Version = e.Value
			case envErrorPercent:
				if opts.ErrorPercent, err = strconv.Atoi(e.Value); err != nil {
					return nil, fmt.Errorf("%s: %w", envErrorPercent, err)
				}
			}
		}
		app, err := demoapp.Start(ctx, opts)
		if err != nil {
			return nil, err
		}
		target := testprom.PodTarget{Namespace: pod.Namespace, Pod: pod.Name, Revision: pod.Labels[translate.RevisionLabel], Addr: app.MetricsAddr()}
		if err := scrapes.Add(ctx, target); err != nil {
			_ = app.Stop()
			return nil, err
		}
		return func() {
			_ = scrapes.Remove(context.Background(), target)
			_ = app.Stop()
		}, nil
	})
}

// scrapes keeps every Prometheus of the tests scraping the pods of the namespaces it watches.
var scrapes = testprom.NewPodTargets()

// startPrometheus starts a Prometheus of the test's own that scrapes the namespace's pods.
func startPrometheus(t *testing.T, ns string) *testprom.Server {
	t.Helper()
	srv := testprom.StartT(t, testprom.Options{ScrapeInterval: scrapeInterval})
	must(t, scrapes.Watch(context.Background(), srv, ns))
	t.Cleanup(func() { scrapes.Forget(srv) })
	return srv
}
