package manager

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// cacheOptions keeps pods small in the informer cache and restricts the Secrets and ConfigMaps it
// holds to Sluice's own.
//
// The mesh translation needs a pod's labels, owners and service account (its SPIFFE identity);
// a pod's spec and status are most of its size, and pods are the most numerous objects the
// operator watches. Pods carry no label or annotation with their service account, so a
// metadata-only watch is not enough; instead the cache keeps typed pods with their metadata
// (without managedFields), spec.serviceAccountName and status.phase (STRICT readiness counts
// running pods) only. Every reader of pods through the manager's cache sees these slim pods.
//
// Secrets: only identity Secrets (label mesh.sluice.dev/identity=true) are ever read, so no other
// Secret's private key enters the operator's memory; of those, only tls.crt, tls.key and ca.crt
// are kept (what SDS and the trust bundles serve). ConfigMaps: only the ones Sluice writes
// (label mesh.sluice.dev/component: trust bundles and proxy reports). A read of another Secret or
// ConfigMap through the cache finds nothing.
func cacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:       {Transform: slimPod},
		&corev1.Secret{}:    {Label: labels.SelectorFromSet(labels.Set{zerotrust.LabelIdentity: "true"}), Transform: slimIdentitySecret},
		&corev1.ConfigMap{}: {Label: componentSelector()},
	}}
}

// componentSelector selects the ConfigMaps Sluice writes.
func componentSelector() labels.Selector {
	req, err := labels.NewRequirement(zerotrust.LabelComponent, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid key
	}
	return labels.NewSelector().Add(*req)
}

// slimPod is the cache transform of pods; other objects (metadata-only pods) pass unchanged.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	meta := *pod.ObjectMeta.DeepCopy()
	meta.ManagedFields = nil
	return &corev1.Pod{
		TypeMeta:   pod.TypeMeta,
		ObjectMeta: meta,
		Spec:       corev1.PodSpec{ServiceAccountName: pod.Spec.ServiceAccountName},
		Status:     corev1.PodStatus{Phase: pod.Status.Phase},
	}, nil
}

// slimIdentitySecret keeps an identity Secret's metadata (without managedFields and annotations)
// and its tls.crt, tls.key and ca.crt.
func slimIdentitySecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	meta := metav1.ObjectMeta{
		Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
		Generation: s.Generation, CreationTimestamp: s.CreationTimestamp, DeletionTimestamp: s.DeletionTimestamp,
		Labels: s.Labels, OwnerReferences: s.OwnerReferences,
	}
	data := map[string][]byte{}
	for _, k := range []string{translate.SecretKeyCertificate, translate.SecretKeyPrivateKey, translate.SecretKeyCA} {
		if v, ok := s.Data[k]; ok {
			data[k] = v
		}
	}
	return &corev1.Secret{TypeMeta: s.TypeMeta, ObjectMeta: meta, Type: s.Type, Data: data}, nil
}
