package webhooks_test

import (
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/repo"
)

// sample reads config/samples/<file> into a new T, moved to namespace ns.
func sample[T any, P interface {
	*T
	client.Object
}](t *testing.T, file, ns string) P {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	obj := P(new(T))
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if ns != "" {
		obj.SetNamespace(ns)
	}
	return obj
}

func sampleRollout(t *testing.T, ns string) *meshv1alpha1.Rollout {
	return sample[meshv1alpha1.Rollout](t, "mesh_v1alpha1_rollout.yaml", ns)
}

func sampleTrafficPolicy(t *testing.T, ns string) *meshv1alpha1.TrafficPolicy {
	return sample[meshv1alpha1.TrafficPolicy](t, "mesh_v1alpha1_trafficpolicy.yaml", ns)
}

func sampleZeroTrust(t *testing.T, ns string) *meshv1alpha1.ZeroTrust {
	return sample[meshv1alpha1.ZeroTrust](t, "mesh_v1alpha1_zerotrust.yaml", ns)
}

func deployment(ns, name string, podLabels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v1"}}},
			},
		},
	}
}

func service(ns, name string, selector map[string]string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{
			{Name: "http", Port: port, TargetPort: intstr.FromInt32(port)},
		}},
	}
}
