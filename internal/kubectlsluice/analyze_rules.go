package kubectlsluice

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// Finding is one problem analyze found.
type Finding struct {
	// Severity is Error (it does not work as written) or Warning (it works, maybe not as meant).
	Severity  string `json:"severity"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Field is the path of the field at fault, such as spec.routes[1].
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Severities of a Finding.
const (
	SeverityError   = "Error"
	SeverityWarning = "Warning"
)

// cluster is what analyze reads: the Sluice objects of the namespaces looked at, the objects they
// refer to, and the operator namespace's mesh-wide ZeroTrusts.
type cluster struct {
	Rollouts          []meshv1alpha1.Rollout
	TrafficPolicies   []meshv1alpha1.TrafficPolicy
	ZeroTrusts        []meshv1alpha1.ZeroTrust // of the namespaces looked at, and of the operator's
	Services          []corev1.Service
	Deployments       []appsv1.Deployment
	Pods              []corev1.Pod
	OperatorNamespace string
	// Namespaces looked at; empty means every namespace.
	Namespaces []string
}

// The pod parts that put a workload in the mesh: the injected Envoy sidecar, or a proxyless gRPC
// bootstrap in any container's environment.
const (
	proxyContainer   = "sluice-proxy"
	grpcBootstrapEnv = "GRPC_XDS_BOOTSTRAP"
)

// analyze lints the cluster's Sluice objects; the findings are sorted.
func analyze(c cluster) []Finding {
	a := &analyzer{c: c}
	a.rollouts()
	a.trafficPolicies()
	a.zeroTrusts()
	sort.Slice(a.out, func(i, j int) bool {
		x, y := a.out[i], a.out[j]
		return strings.Join([]string{x.Namespace, x.Kind, x.Name, x.Field, x.Message}, "\x00") <
			strings.Join([]string{y.Namespace, y.Kind, y.Name, y.Field, y.Message}, "\x00")
	})
	return a.out
}

type analyzer struct {
	c   cluster
	out []Finding
}

func (a *analyzer) add(severity, kind, ns, name, field, format string, args ...any) {
	a.out = append(a.out, Finding{Severity: severity, Kind: kind, Namespace: ns, Name: name, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (a *analyzer) service(ns, name string) *corev1.Service {
	for i := range a.c.Services {
		if s := &a.c.Services[i]; s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

func (a *analyzer) deployment(ns, name string) *appsv1.Deployment {
	for i := range a.c.Deployments {
		if d := &a.c.Deployments[i]; d.Namespace == ns && d.Name == name {
			return d
		}
	}
	return nil
}

// looked reports whether namespace ns is one analyze reports on.
func (a *analyzer) looked(ns string) bool {
	if len(a.c.Namespaces) == 0 {
		return true
	}
	for _, n := range a.c.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

func (a *analyzer) rollouts() {
	const kind = "Rollout"
	byTarget, byService := map[string]string{}, map[string]string{}
	for _, ro := range sortedByAge(a.c.Rollouts, func(r meshv1alpha1.Rollout) (string, string, int64) {
		return r.Namespace, r.Name, r.CreationTimestamp.Unix()
	}) {
		ns, name := ro.Namespace, ro.Name
		target := a.deployment(ns, ro.Spec.TargetRef.Name)
		if target == nil {
			a.add(SeverityError, kind, ns, name, "spec.targetRef.name", "Deployment %q does not exist in %s: create it or name an existing one", ro.Spec.TargetRef.Name, ns)
		}
		svc := a.service(ns, ro.Spec.Service.Name)
		switch {
		case svc == nil:
			a.add(SeverityError, kind, ns, name, "spec.service.name", "Service %q does not exist in %s: the canary's traffic cannot be split", ro.Spec.Service.Name, ns)
		case !hasPort(svc, ro.Spec.Service.Port):
			a.add(SeverityError, kind, ns, name, "spec.service.port", "Service %q has no port %d (it has %s)", svc.Name, ro.Spec.Service.Port, ports(svc))
		case target != nil && !selects(svc.Spec.Selector, target.Spec.Template.Labels):
			a.add(SeverityError, kind, ns, name, "spec.service.name", "Service %q does not select the pods of Deployment %q: its traffic never reaches the canary", svc.Name, target.Name)
		}
		if other, ok := byTarget[ns+"/"+ro.Spec.TargetRef.Name]; ok {
			a.add(SeverityError, kind, ns, name, "spec.targetRef.name", "Rollout %q, older, already releases Deployment %q: delete one", other, ro.Spec.TargetRef.Name)
		} else {
			byTarget[ns+"/"+ro.Spec.TargetRef.Name] = name
		}
		if other, ok := byService[ns+"/"+ro.Spec.Service.Name]; ok {
			a.add(SeverityError, kind, ns, name, "spec.service.name", "Rollout %q, older, already splits Service %q: only the older one routes", other, ro.Spec.Service.Name)
		} else {
			byService[ns+"/"+ro.Spec.Service.Name] = name
		}
	}
}

func (a *analyzer) trafficPolicies() {
	const kind = "TrafficPolicy"
	byService := map[string]string{}
	for _, tp := range sortedByAge(a.c.TrafficPolicies, func(t meshv1alpha1.TrafficPolicy) (string, string, int64) {
		return t.Namespace, t.Name, t.CreationTimestamp.Unix()
	}) {
		ns, name := tp.Namespace, tp.Name
		svc := a.service(ns, tp.Spec.TargetRef.Name)
		if svc == nil {
			a.add(SeverityError, kind, ns, name, "spec.targetRef.name", "Service %q does not exist in %s: the policy applies to nothing", tp.Spec.TargetRef.Name, ns)
		}
		if other, ok := byService[ns+"/"+tp.Spec.TargetRef.Name]; ok {
			a.add(SeverityError, kind, ns, name, "spec.targetRef.name", "TrafficPolicy %q, older, already configures Service %q: merge the two", other, tp.Spec.TargetRef.Name)
		} else {
			byService[ns+"/"+tp.Spec.TargetRef.Name] = name
		}
		for i, s := range tp.Spec.Subsets {
			if svc != nil && !a.anyPod(ns, svc.Spec.Selector, s.Labels) {
				a.add(SeverityWarning, kind, ns, name, fmt.Sprintf("spec.subsets[%d]", i), "subset %q selects no pod of Service %q (labels %s)", s.Name, svc.Name, labels.Set(s.Labels))
			}
		}
		a.unreachableRoutes(tp)
		if m := tp.Spec.Mirror; m != nil && a.service(ns, m.Service) == nil {
			a.add(SeverityError, kind, ns, name, "spec.mirror.service", "Service %q does not exist in %s: nothing receives the copies", m.Service, ns)
		}
	}
}

// unreachableRoutes reports routes that can never match: their own conditions contradict each
// other, or an earlier route takes every request they would match.
func (a *analyzer) unreachableRoutes(tp meshv1alpha1.TrafficPolicy) {
	routes := tp.Spec.Routes
	for i, r := range routes {
		field := fmt.Sprintf("spec.routes[%d]", i)
		if why := contradiction(r.Match); why != "" {
			a.add(SeverityError, "TrafficPolicy", tp.Namespace, tp.Name, field, "route %q can never match: %s", r.Name, why)
			continue
		}
		for j := 0; j < i; j++ {
			if covers(routes[j].Match, r.Match) {
				a.add(SeverityError, "TrafficPolicy", tp.Namespace, tp.Name, field,
					"route %q can never match: route %q before it takes every request it would match (move it up, or narrow %q)", r.Name, routes[j].Name, routes[j].Name)
				break
			}
		}
	}
}

// contradiction says why a match's own conditions cannot all hold; "" when they can. (The CRD's
// rules already refuse two path conditions, a path without its leading / and undefined subsets.)
func contradiction(m *meshv1alpha1.RouteMatch) string {
	if m == nil {
		return ""
	}
	if m.PathRegex != nil {
		if _, err := regexp.Compile(*m.PathRegex); err != nil {
			return fmt.Sprintf("pathRegex %q is not a valid RE2 expression: %v", *m.PathRegex, err)
		}
	}
	exact := map[string]string{}
	for _, h := range m.Headers {
		name := strings.ToLower(h.Name)
		if h.Exact == nil {
			continue
		}
		if v, ok := exact[name]; ok && v != *h.Exact {
			return fmt.Sprintf("header %s must equal both %q and %q", h.Name, v, *h.Exact)
		}
		exact[name] = *h.Exact
	}
	params := map[string]string{}
	for _, q := range m.QueryParams {
		if q.Exact == nil {
			continue
		}
		if v, ok := params[q.Name]; ok && v != *q.Exact {
			return fmt.Sprintf("query parameter %s must equal both %q and %q", q.Name, v, *q.Exact)
		}
		params[q.Name] = *q.Exact
	}
	return ""
}

// covers reports whether every request that b matches is also matched by a: a has no condition b
// lacks or loosens. It errs on the side of false (a finding must be certain).
func covers(a, b *meshv1alpha1.RouteMatch) bool {
	if a == nil || reflect.DeepEqual(*a, meshv1alpha1.RouteMatch{}) {
		return true // a catch-all
	}
	if b == nil {
		return false
	}
	if len(a.Headers) > 0 || len(a.QueryParams) > 0 || a.PathRegex != nil {
		return reflect.DeepEqual(a.Headers, b.Headers) && reflect.DeepEqual(a.QueryParams, b.QueryParams) &&
			reflect.DeepEqual(a.PathRegex, b.PathRegex) && samePaths(a, b) && methodsCover(a.Methods, b.Methods)
	}
	if !methodsCover(a.Methods, b.Methods) {
		return false
	}
	switch {
	case a.Path != nil:
		return b.Path != nil && *b.Path == *a.Path
	case a.PathPrefix != nil:
		return (b.Path != nil && strings.HasPrefix(*b.Path, *a.PathPrefix)) ||
			(b.PathPrefix != nil && strings.HasPrefix(*b.PathPrefix, *a.PathPrefix))
	}
	return true // a matches by methods only
}

func samePaths(a, b *meshv1alpha1.RouteMatch) bool {
	return reflect.DeepEqual(a.Path, b.Path) && reflect.DeepEqual(a.PathPrefix, b.PathPrefix)
}

// methodsCover reports whether methods a (empty: any) allow every method b allows.
func methodsCover(a, b []meshv1alpha1.HTTPMethod) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, m := range b {
		found := false
		for _, n := range a {
			found = found || strings.EqualFold(string(m), string(n))
		}
		if !found {
			return false
		}
	}
	return true
}

// zeroTrusts reports conflicting ZeroTrusts and STRICT workloads outside the mesh.
func (a *analyzer) zeroTrusts() {
	zts := make([]*meshv1alpha1.ZeroTrust, 0, len(a.c.ZeroTrusts))
	for i := range a.c.ZeroTrusts {
		zts = append(zts, &a.c.ZeroTrusts[i])
	}
	pods := make([]zerotrust.Pod, 0, len(a.c.Pods))
	byKey := map[string]*corev1.Pod{}
	for i := range a.c.Pods {
		p := &a.c.Pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pods = append(pods, zerotrust.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName})
		byKey[p.Namespace+"/"+p.Name] = p
	}
	cov := zerotrust.Resolve(zts, pods, a.c.OperatorNamespace)
	for key, conflict := range cov.Conflicts {
		if !a.looked(key.Namespace) {
			continue
		}
		a.add(SeverityError, "ZeroTrust", key.Namespace, key.Name, "spec.selector",
			"conflicts with ZeroTrust %s at %s scope for %d pod(s), which it covers instead: make the selectors differ or delete one", conflict.Winner, conflict.Scope, len(conflict.Workloads))
	}
	for key, err := range cov.InvalidSelectors {
		if a.looked(key.Namespace) {
			a.add(SeverityError, "ZeroTrust", key.Namespace, key.Name, "spec.selector", "invalid selector: %v", err)
		}
	}
	// Pods without a proxy under STRICT, reported once per ZeroTrust.
	outside := map[string][]string{}
	ztOf := map[string]*meshv1alpha1.ZeroTrust{}
	for podKey, c := range cov.ByPod {
		p := byKey[podKey.Namespace+"/"+podKey.Name]
		if c.ZeroTrust.Spec.MTLS.Mode != meshv1alpha1.MTLSStrict || inMesh(p) || !a.looked(p.Namespace) {
			continue
		}
		k := c.ZeroTrust.Namespace + "/" + c.ZeroTrust.Name
		outside[k] = append(outside[k], p.Namespace+"/"+p.Name)
		ztOf[k] = c.ZeroTrust
	}
	for k, podNames := range outside {
		sort.Strings(podNames)
		zt := ztOf[k]
		a.add(SeverityError, "ZeroTrust", zt.Namespace, zt.Name, "spec.mtls.mode",
			"STRICT covers %d pod(s) with neither the %s sidecar nor a %s bootstrap, which can neither call nor be called over mutual TLS: %s (inject them, or use PERMISSIVE while migrating)",
			len(podNames), proxyContainer, grpcBootstrapEnv, strings.Join(podNames, ", "))
	}
}

// inMesh reports whether a pod runs the injected sidecar or a proxyless gRPC bootstrap.
func inMesh(p *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			if c.Name == proxyContainer {
				return true
			}
			for _, e := range c.Env {
				if e.Name == grpcBootstrapEnv || e.Name == grpcBootstrapEnv+"_CONFIG" {
					return true
				}
			}
		}
	}
	return false
}

// anyPod reports whether a pod of namespace ns carries both label sets.
func (a *analyzer) anyPod(ns string, selector, subset map[string]string) bool {
	for _, p := range a.c.Pods {
		if p.Namespace == ns && selects(selector, p.Labels) && selects(subset, p.Labels) {
			return true
		}
	}
	return false
}

// selects reports whether a Service-style selector (empty selects nothing) matches the labels.
func selects(selector, lbls map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	return labels.SelectorFromSet(selector).Matches(labels.Set(lbls))
}

func hasPort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

func ports(s *corev1.Service) string {
	var out []string
	for _, p := range s.Spec.Ports {
		out = append(out, fmt.Sprint(p.Port))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// sortedByAge orders objects oldest first (then by namespace and name), so "older" wins conflicts
// as the operator decides them.
func sortedByAge[T any](items []T, key func(T) (ns, name string, created int64)) []T {
	out := append([]T(nil), items...)
	sort.SliceStable(out, func(i, j int) bool {
		ni, mi, ci := key(out[i])
		nj, mj, cj := key(out[j])
		if ci != cj {
			return ci < cj
		}
		if ni != nj {
			return ni < nj
		}
		return mi < mj
	})
	return out
}
