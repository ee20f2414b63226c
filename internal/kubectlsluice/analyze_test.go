package kubectlsluice_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
)

func pod(t *testing.T, ns, name, app string, meshed bool) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app, "version": "v1"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v1"}}},
	}
	if meshed {
		p.Spec.InitContainers = []corev1.Container{{Name: "sluice-proxy", Image: "envoy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	}
	must(t, k8s.Create(context.Background(), p))
}

func trafficPolicy(t *testing.T, ns, name string, spec meshv1alpha1.TrafficPolicySpec) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &meshv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}))
}

func zeroTrust(t *testing.T, ns, name string, mode meshv1alpha1.MTLSMode, selector map[string]string) {
	t.Helper()
	zt := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: meshv1alpha1.ZeroTrustSpec{
		MTLS:     meshv1alpha1.MutualTLS{Mode: mode},
		Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: "mesh-ca"}},
	}}
	if selector != nil {
		zt.Spec.Selector = &metav1.LabelSelector{MatchLabels: selector}
	}
	must(t, k8s.Create(context.Background(), zt))
}

func route(name string, match *meshv1alpha1.RouteMatch, subset string) meshv1alpha1.Route {
	return meshv1alpha1.Route{Name: name, Match: match, Destinations: []meshv1alpha1.Destination{{Subset: subset, Weight: ptr.To[int32](100)}}}
}

func exactHeader(name, value string) meshv1alpha1.HeaderMatch {
	return meshv1alpha1.HeaderMatch{Name: name, Exact: ptr.To(value)}
}

// cleanApp is a Service with its Deployment, meshed pods, a Rollout, a TrafficPolicy and a STRICT
// ZeroTrust that all fit.
func cleanApp(t *testing.T, ns, app string) {
	t.Helper()
	deployment(t, ns, app, app, 2, 2, "")
	service(t, ns, app, app, 8080)
	pod(t, ns, app+"-1", app, true)
	rollout(t, ns, app, app, nil, meshv1alpha1.RolloutStatus{}, setWeight(20))
	trafficPolicy(t, ns, app, meshv1alpha1.TrafficPolicySpec{
		TargetRef: meshv1alpha1.ServiceRef{Kind: "Service", Name: app},
		Subsets:   []meshv1alpha1.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
		Routes: []meshv1alpha1.Route{
			route("api", &meshv1alpha1.RouteMatch{PathPrefix: ptr.To("/api/")}, "v1"),
			route("rest", nil, ""),
		},
	})
	zeroTrust(t, ns, app, meshv1alpha1.MTLSStrict, nil)
}

func TestAnalyzeFindsNothingInACleanNamespace(t *testing.T) {
	ns := namespace(t, "analyze-clean")
	cleanApp(t, ns, "shop")
	r := plugin(t, "analyze", "-n", ns)
	if r.err != nil || r.out != "No problems found.\n" {
		t.Errorf("analyze of a clean namespace: %v\n%s", r.err, r.out)
	}
}

// Every planted problem is found once, named by its field; the namespace's healthy app is not
// reported; analyze exits 6.
func TestAnalyzeFindsEachPlantedProblem(t *testing.T) {
	ns := namespace(t, "analyze-planted")
	cleanApp(t, ns, "shop")

	// Rollouts: a missing Deployment, a missing Service, a wrong port, a Service that selects other
	// pods, and a second Rollout of the same Deployment and Service.
	rollout(t, ns, "ghost", "ghost", nil, meshv1alpha1.RolloutStatus{}, setWeight(10))
	deployment(t, ns, "cart", "cart", 1, 1, "")
	service(t, ns, "cart", "cart", 8080)
	ro := &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cart"}, Spec: meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.WorkloadRef{Kind: "Deployment", Name: "cart"}, Service: meshv1alpha1.ServicePort{Name: "cart", Port: 9090},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: []meshv1alpha1.CanaryStep{setWeight(10)}}}}}
	must(t, k8s.Create(context.Background(), ro))
	deployment(t, ns, "pay", "pay", 1, 1, "")
	service(t, ns, "pay", "payments", 8080)
	ro = ro.DeepCopy()
	ro.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "pay"}
	ro.Spec.TargetRef.Name, ro.Spec.Service = "pay", meshv1alpha1.ServicePort{Name: "pay", Port: 8080}
	must(t, k8s.Create(context.Background(), ro))
	// Created in the same second as shop's: the name breaks the tie, as it does for the operator.
	ro = ro.DeepCopy()
	ro.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "shop-again"}
	ro.Spec.TargetRef.Name, ro.Spec.Service.Name = "shop", "shop"
	must(t, k8s.Create(context.Background(), ro))

	// TrafficPolicies: a missing Service, a second policy for shop, a subset without pods, a route
	// behind a catch-all, a route behind a broader prefix, contradicting headers, a missing mirror.
	trafficPolicy(t, ns, "nowhere", meshv1alpha1.TrafficPolicySpec{TargetRef: meshv1alpha1.ServiceRef{Name: "nowhere"}})
	trafficPolicy(t, ns, "shop-routes", meshv1alpha1.TrafficPolicySpec{
		TargetRef: meshv1alpha1.ServiceRef{Name: "shop"},
		Subsets:   []meshv1alpha1.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v9", Labels: map[string]string{"version": "v9"}}},
		Routes: []meshv1alpha1.Route{
			route("api", &meshv1alpha1.RouteMatch{PathPrefix: ptr.To("/api/")}, "v1"),
			route("orders", &meshv1alpha1.RouteMatch{Path: ptr.To("/api/orders"), Methods: []meshv1alpha1.HTTPMethod{"GET"}}, "v9"),
			route("twice", &meshv1alpha1.RouteMatch{Headers: []meshv1alpha1.HeaderMatch{exactHeader("x-env", "a"), exactHeader("X-Env", "b")}}, "v1"),
			route("all", nil, ""),
			route("late", &meshv1alpha1.RouteMatch{PathPrefix: ptr.To("/late/")}, "v1"),
		},
		Mirror: &meshv1alpha1.Mirror{Service: "shadow"},
	})

	// ZeroTrusts: a second namespace-wide one, and STRICT over a pod with no proxy.
	zeroTrust(t, ns, "wide-too", meshv1alpha1.MTLSPermissive, nil)
	pod(t, ns, "shop-legacy", "shop", false)

	r := plugin(t, "analyze", "-n", ns)
	if r.code() != kubectlsluice.ExitFindings {
		t.Errorf("exit code %d (%v), want %d", r.code(), r.err, kubectlsluice.ExitFindings)
	}
	checkGolden(t, "analyze.txt", r.out)
	planted := []struct{ object, field, says string }{
		{"rollout/ghost", "spec.targetRef.name", `Deployment "ghost" does not exist`},
		{"rollout/ghost", "spec.service.name", `Service "ghost" does not exist`},
		{"rollout/cart", "spec.service.port", "has no port 9090"},
		{"rollout/pay", "spec.service.name", "does not select the pods"},
		{"rollout/shop-again", "spec.targetRef.name", `already releases Deployment "shop"`},
		{"rollout/shop-again", "spec.service.name", `already splits Service "shop"`},
		{"trafficpolicy/nowhere", "spec.targetRef.name", `Service "nowhere" does not exist`},
		{"trafficpolicy/shop-routes", "spec.targetRef.name", "already configures Service"},
		{"trafficpolicy/shop-routes", "spec.subsets[1]", `subset "v9" selects no pod`},
		{"trafficpolicy/shop-routes", "spec.routes[1]", `route "api" before it`},
		{"trafficpolicy/shop-routes", "spec.routes[2]", "must equal both"},
		{"trafficpolicy/shop-routes", "spec.routes[4]", `route "all" before it`},
		{"trafficpolicy/shop-routes", "spec.mirror.service", `Service "shadow" does not exist`},
		{"zerotrust/wide-too", "spec.selector", "conflicts with ZeroTrust analyze-planted/shop"},
		{"zerotrust/shop", "spec.mtls.mode", "STRICT covers 1 pod(s)"},
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")[1:]
	if len(lines) != len(planted) {
		t.Errorf("analyze reported %d problems, want the %d planted:\n%s", len(lines), len(planted), r.out)
	}
	for _, p := range planted {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			found = found || (len(f) > 3 && f[1] == p.object && f[2] == p.field && strings.Contains(l, p.says))
		}
		if !found {
			t.Errorf("analyze did not report %s %s (%q)", p.object, p.field, p.says)
		}
	}

	r = plugin(t, "analyze", "-n", ns, "-o", "json")
	if r.code() != kubectlsluice.ExitFindings || !strings.Contains(r.out, `"field": "spec.mirror.service"`) {
		t.Errorf("analyze -o json: %v\n%s", r.err, r.out)
	}
}
