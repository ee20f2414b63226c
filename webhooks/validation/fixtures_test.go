package validation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/repo"
)

// sample reads config/samples/<file> into obj.
func sample[T any](t testing.TB, file string) *T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj
}

func sampleRollout(t testing.TB) *meshv1alpha1.Rollout {
	return sample[meshv1alpha1.Rollout](t, "mesh_v1alpha1_rollout.yaml")
}

func sampleTrafficPolicy(t testing.TB) *meshv1alpha1.TrafficPolicy {
	return sample[meshv1alpha1.TrafficPolicy](t, "mesh_v1alpha1_trafficpolicy.yaml")
}

func sampleZeroTrust(t testing.TB) *meshv1alpha1.ZeroTrust {
	return sample[meshv1alpha1.ZeroTrust](t, "mesh_v1alpha1_zerotrust.yaml")
}

// The samples' cluster: namespace shop, Deployment and Service checkout (app=checkout, port
// 8080), pods of versions v1 and v2, and a shadow Service for the mirror.
func deployment(name string, podLabels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}},
		},
	}
}

func service(name string, selector map[string]string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Port: p})
	}
	return svc
}

var checkoutLabels = map[string]string{"app": "checkout"}

func rolloutRelated() RolloutRelated {
	return RolloutRelated{
		Deployment: deployment("checkout", map[string]string{"app": "checkout", "version": "v1"}),
		Service:    service("checkout", checkoutLabels, 8080),
	}
}

func policyRelated() TrafficPolicyRelated {
	return TrafficPolicyRelated{
		Service:       service("checkout", checkoutLabels, 8080),
		PodLabels:     []map[string]string{{"app": "checkout", "version": "v1"}, {"app": "checkout", "version": "v2"}},
		MirrorService: service("checkout-shadow", map[string]string{"app": "checkout-shadow"}, 8080),
	}
}

func zeroTrustRelated() ZeroTrustRelated {
	return ZeroTrustRelated{
		Issuer:   IssuerReady,
		Services: map[string]*corev1.Service{"checkout": service("checkout", checkoutLabels, 8080)},
	}
}

// wantResult checks that the errors and warnings are exactly the expected ones.
func wantResult(t *testing.T, got Result, wantErrors, wantWarnings []string) {
	t.Helper()
	var errs []string
	for _, e := range got.Errors {
		errs = append(errs, e.Error())
	}
	if strings.Join(errs, "\n") != strings.Join(wantErrors, "\n") {
		t.Errorf("errors:\n got %q\nwant %q", errs, wantErrors)
	}
	if strings.Join(got.Warnings, "\n") != strings.Join(wantWarnings, "\n") {
		t.Errorf("warnings:\n got %q\nwant %q", got.Warnings, wantWarnings)
	}
}
