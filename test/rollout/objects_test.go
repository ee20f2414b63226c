package rollout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testcluster"
)

// The demo app's behaviour comes from its container's environment, which is part of the pod
// template: a new value is a new revision.
const (
	envVersion      = "VERSION"
	envErrorPercent = "ERROR_PERCENT"
)

const appPort = 8080

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, name string) string {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// deployApp creates the user's Deployment and the Service in front of it, as a team would before
// it adds a Rollout.
func deployApp(t *testing.T, ns, name string, replicas int32, version string, errorPercent int) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// Ready only once the test's server for the pod listens, as a readiness probe would.
					ReadinessGates: []corev1.PodReadinessGate{{ConditionType: testcluster.ServingGate}},
					Containers: []corev1.Container{{
						Name: "app", Image: "sluice-demoapp:latest",
						Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: appPort}},
						Env:   appEnv(version, errorPercent),
					}}},
			},
		},
	}
	must(t, k8s.Create(context.Background(), d))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports: []corev1.ServicePort{{Name: "grpc", Port: appPort, TargetPort: intstr.FromInt32(appPort),
				AppProtocol: ptr.To("kubernetes.io/h2c")}},
		},
	}
	must(t, k8s.Create(context.Background(), svc))
}

func appEnv(version string, errorPercent int) []corev1.EnvVar {
	return []corev1.EnvVar{{Name: envVersion, Value: version}, {Name: envErrorPercent, Value: fmt.Sprint(errorPercent)}}
}

// release edits the user's Deployment to a new version: a new revision, which starts a canary run.
func release(t *testing.T, ns, name, version string, errorPercent int) {
	t.Helper()
	d := &appsv1.Deployment{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d))
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Spec.Containers[0].Env = appEnv(version, errorPercent)
	must(t, k8s.Patch(context.Background(), d, patch))
}

// analysisSpec checks the canary's success rate (at least minSuccess percent) and p99 latency with
// the built-in templates, every interval.
func analysisSpec(interval time.Duration, failureLimit int32, minSuccess float64, promAddr string) *meshv1alpha1.Analysis {
	a := &meshv1alpha1.Analysis{
		Interval:     &metav1.Duration{Duration: interval},
		FailureLimit: failureLimit,
		MinRequests:  ptr.To[int32](5),
		Metrics: []meshv1alpha1.AnalysisMetric{
			{Name: "success-rate", Template: meshv1alpha1.MetricRequestSuccessRate,
				ThresholdRange: meshv1alpha1.ThresholdRange{Min: ptr.To(minSuccess)}},
			{Name: "latency", Template: meshv1alpha1.MetricRequestDuration,
				ThresholdRange: meshv1alpha1.ThresholdRange{Max: ptr.To(500.0)}},
		},
	}
	if promAddr != "" {
		a.Prometheus = &meshv1alpha1.PrometheusProvider{Address: promAddr}
	}
	return a
}

func setWeight(w int32) meshv1alpha1.CanaryStep { return meshv1alpha1.CanaryStep{SetWeight: ptr.To(w)} }

func pauseFor(d time.Duration) meshv1alpha1.CanaryStep {
	return meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{Duration: &metav1.Duration{Duration: d}}}
}

func pauseUntilPromoted() meshv1alpha1.CanaryStep {
	return meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{}}
}

// createRollout releases Deployment name through the Service of the same name.
func createRollout(t *testing.T, ns, name string, analysis *meshv1alpha1.Analysis, steps ...meshv1alpha1.CanaryStep) *meshv1alpha1.Rollout {
	t.Helper()
	ro := &meshv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: meshv1alpha1.RolloutSpec{
			TargetRef: meshv1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			Service:   meshv1alpha1.ServicePort{Name: name, Port: appPort},
			Strategy:  meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: steps}},
			Analysis:  analysis,
		},
	}
	must(t, k8s.Create(context.Background(), ro))
	return ro
}

// request makes an imperative request through the Rollout's annotations, as `kubectl annotate`
// (and the kubectl plugin) does.
func request(t *testing.T, ns, name, kind string) {
	t.Helper()
	ro := &meshv1alpha1.Rollout{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro))
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	ro.Annotations["rollout.sluice.dev/"+kind] = time.Now().UTC().Format(time.RFC3339Nano)
	must(t, k8s.Patch(context.Background(), ro, patch))
}

func getRollout(t *testing.T, ns, name string) *meshv1alpha1.Rollout {
	t.Helper()
	ro := &meshv1alpha1.Rollout{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro))
	return ro
}
