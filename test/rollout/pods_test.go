package rollout_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
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
		target := scrapeTarget{namespace: pod.Namespace, pod: pod.Name, revision: pod.Labels[translate.RevisionLabel], addr: app.MetricsAddr()}
		if err := scrapes.add(ctx, target); err != nil {
			_ = app.Stop()
			return nil, err
		}
		return func() {
			_ = scrapes.remove(context.Background(), target)
			_ = app.Stop()
		}, nil
	})
}

// scrapeTarget is one pod's metrics endpoint.
type scrapeTarget struct {
	namespace, pod, revision, addr string
}

// scrapeConfig keeps every Prometheus of the tests scraping the pods of the namespaces it watches.
type scrapeConfig struct {
	mu      sync.Mutex
	targets []scrapeTarget
	servers map[*testprom.Server][]string // namespaces; nil: every namespace
}

var scrapes = &scrapeConfig{servers: map[*testprom.Server][]string{}}

// watch makes srv scrape the pods of namespaces (every namespace when none is given).
func (s *scrapeConfig) watch(ctx context.Context, srv *testprom.Server, namespaces ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers[srv] = namespaces
	return s.applyLocked(ctx, srv)
}

func (s *scrapeConfig) forget(srv *testprom.Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.servers, srv)
}

func (s *scrapeConfig) add(ctx context.Context, t scrapeTarget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = append(s.targets, t)
	return s.applyAllLocked(ctx, t.namespace)
}

func (s *scrapeConfig) remove(ctx context.Context, t scrapeTarget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = slices.DeleteFunc(s.targets, func(x scrapeTarget) bool { return x == t })
	return s.applyAllLocked(ctx, t.namespace)
}

// applyAllLocked reconfigures the servers that watch namespace.
func (s *scrapeConfig) applyAllLocked(ctx context.Context, namespace string) error {
	for srv, namespaces := range s.servers {
		if namespaces == nil || slices.Contains(namespaces, namespace) {
			if err := s.applyLocked(ctx, srv); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *scrapeConfig) applyLocked(ctx context.Context, srv *testprom.Server) error {
	namespaces := s.servers[srv]
	var groups []testprom.TargetGroup
	for _, t := range s.targets {
		if namespaces != nil && !slices.Contains(namespaces, t.namespace) {
			continue
		}
		groups = append(groups, testprom.TargetGroup{Targets: []string{t.addr}, Labels: map[string]string{
			"namespace": t.namespace, "pod": t.pod, "pod_template_hash": t.revision,
		}})
	}
	return srv.SetTargetGroups(ctx, groups...)
}

// startPrometheus starts a Prometheus of the test's own that scrapes the namespace's pods.
func startPrometheus(t *testing.T, ns string) *testprom.Server {
	t.Helper()
	srv := testprom.StartT(t, testprom.Options{ScrapeInterval: scrapeInterval})
	must(t, scrapes.watch(context.Background(), srv, ns))
	t.Cleanup(func() { scrapes.forget(srv) })
	return srv
}
