package manager

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// cacheOptions keeps pods small in the informer cache. The mesh translation needs a pod's labels,
// owners and service account (its SPIFFE identity); a pod's spec and status are most of its size,
// and pods are the most numerous objects the operator watches. Pods carry no label or annotation
// with their service account, so a metadata-only watch is not enough; instead the cache keeps
// typed pods with their metadata (without managedFields) and spec.serviceAccountName only. Every
// reader of pods through the manager's cache sees these slim pods.
//
// Secrets: the operator reads only the workload identity Secrets (SDS for Envoy sidecars), so its
// informer lists and watches only those with the identity label, and keeps only their certificate,
// key and CA.
func cacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Transform: slimPod},
		&corev1.Secret{}: {
			Label:     labels.SelectorFromSet(labels.Set{zerotrust.LabelIdentity: "true"}),
			Transform: slimIdentitySecret,
		},
	}}
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
	}, nil
}
