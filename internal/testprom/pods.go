package testprom

import (
	"context"
	"slices"
	"sync"
)

// PodTarget is one pod's metrics endpoint, labelled as a Kubernetes scrape configuration labels it
// (config/prometheus): namespace, pod and pod_template_hash.
type PodTarget struct {
	Namespace, Pod, Revision string
	// Addr is the host:port serving /metrics.
	Addr string
}

// PodTargets keeps Prometheus servers scraping the pods of the namespaces each watches, as pods
// come and go: what Kubernetes service discovery does in a cluster.
type PodTargets struct {
	mu      sync.Mutex
	targets []PodTarget
	servers map[*Server][]string // namespaces; nil: every namespace
}

// NewPodTargets returns an empty PodTargets.
func NewPodTargets() *PodTargets { return &PodTargets{servers: map[*Server][]string{}} }

// Watch makes srv scrape the pods of namespaces (every namespace when none is given).
func (p *PodTargets) Watch(ctx context.Context, srv *Server, namespaces ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.servers[srv] = namespaces
	return p.applyLocked(ctx, srv)
}

// Forget stops reconfiguring srv.
func (p *PodTargets) Forget(srv *Server) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.servers, srv)
}

// Add starts the scraping of a pod by the servers that watch its namespace.
func (p *PodTargets) Add(ctx context.Context, t PodTarget) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = append(p.targets, t)
	return p.applyNamespaceLocked(ctx, t.Namespace)
}

// Remove ends the scraping of a pod.
func (p *PodTargets) Remove(ctx context.Context, t PodTarget) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = slices.DeleteFunc(p.targets, func(x PodTarget) bool { return x == t })
	return p.applyNamespaceLocked(ctx, t.Namespace)
}

func (p *PodTargets) applyNamespaceLocked(ctx context.Context, namespace string) error {
	for srv, namespaces := range p.servers {
		if namespaces == nil || slices.Contains(namespaces, namespace) {
			if err := p.applyLocked(ctx, srv); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *PodTargets) applyLocked(ctx context.Context, srv *Server) error {
	namespaces := p.servers[srv]
	var groups []TargetGroup
	for _, t := range p.targets {
		if namespaces != nil && !slices.Contains(namespaces, t.Namespace) {
			continue
		}
		groups = append(groups, TargetGroup{Targets: []string{t.Addr}, Labels: map[string]string{
			"namespace": t.Namespace, "pod": t.Pod, "pod_template_hash": t.Revision,
		}})
	}
	return srv.SetTargetGroups(ctx, groups...)
}
