package kubectlsluice_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func namespace(t *testing.T, name string) string {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// ago is a time before the plugin's clock.
func ago(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-d)} }

func labelsOf(app string) map[string]string { return map[string]string{"app": app} }

// deployment creates a Deployment of app with the given size and ready pods (its status as the
// Deployment controller would write it), and, when revision is set, the ReplicaSet of its
// template with that pod-template-hash, as the controller would make it.
func deployment(t *testing.T, ns, name, app string, replicas, ready int32, revision string) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labelsOf(app)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v1"}}},
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labelsOf(app)},
			Template: tmpl,
		},
	}
	must(t, k8s.Create(ctx, d))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, ReadyReplicas: ready}
	must(t, k8s.Status().Update(ctx, d))
	if revision != "" {
		rsTmpl := tmpl.DeepCopy()
		rsTmpl.Labels = map[string]string{"app": app, "pod-template-hash": revision}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + revision, Labels: rsTmpl.Labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: rsTmpl.Labels}, Template: *rsTmpl},
		}
		must(t, k8s.Create(ctx, rs))
	}
	return d
}

func service(t *testing.T, ns, name, app string, port int32) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: labelsOf(app), Ports: []corev1.ServicePort{{Name: "grpc", Port: port,
			TargetPort: intstr.FromInt32(port), AppProtocol: ptr.To("kubernetes.io/h2c")}}},
	}))
}

// rollout creates a Rollout of Deployment target through Service target, then writes status as
// the operator would.
func rollout(t *testing.T, ns, name, target string, analysis *meshv1alpha1.Analysis, status meshv1alpha1.RolloutStatus, steps ...meshv1alpha1.CanaryStep) *meshv1alpha1.Rollout {
	t.Helper()
	ctx := context.Background()
	ro := &meshv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: meshv1alpha1.RolloutSpec{
			TargetRef: meshv1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			Service:   meshv1alpha1.ServicePort{Name: target, Port: 8080},
			Strategy:  meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: steps}},
			Analysis:  analysis,
		},
	}
	must(t, k8s.Create(ctx, ro))
	status.ObservedGeneration = ro.Generation
	ro.Status = status
	must(t, k8s.Status().Update(ctx, ro))
	return ro
}

// event records an event about the Rollout as the operator's recorder would, at a fixed time.
func event(t *testing.T, ro *meshv1alpha1.Rollout, at time.Duration, typ, reason, message string) {
	t.Helper()
	when := metav1.NewTime(now.Add(-at))
	must(t, k8s.Create(context.Background(), &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, GenerateName: ro.Name + "."},
		InvolvedObject: corev1.ObjectReference{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "Rollout",
			Namespace: ro.Namespace, Name: ro.Name, UID: ro.UID},
		Type: typ, Reason: reason, Message: message, Count: 1,
		FirstTimestamp: when, LastTimestamp: when, Source: corev1.EventSource{Component: "sluice-rollout"},
	}))
}

func setWeight(w int32) meshv1alpha1.CanaryStep { return meshv1alpha1.CanaryStep{SetWeight: ptr.To(w)} }

func pauseFor(d time.Duration) meshv1alpha1.CanaryStep {
	return meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.RolloutPause{Duration: &metav1.Duration{Duration: d}}}
}

func getRollout(t *testing.T, ns, name string) *meshv1alpha1.Rollout {
	t.Helper()
	ro := &meshv1alpha1.Rollout{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro))
	return ro
}
