package manager

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cacheOptions keeps pods small in the informer cache. The mesh translation needs a pod's labels,
// owners and service account (its SPIFFE identity); a pod's spec and status are most of its size,
// and pods are the most numerous objects the operator watches. Pods carry no label or annotation
// with their service account, so a metadata-only watch is not enough; instead the cache keeps
// typed pods with their metadata (without managedFields) and spec.serviceAccountName only. Every
// reader of pods through the manager's cache sees these slim pods.
func cacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Transform: slimPod},
	}}
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
