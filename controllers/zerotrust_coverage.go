package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// meshCoverage is what the ZeroTrust controllers decide from: every ZeroTrust and pod, which
// ZeroTrust covers each pod, and the identities that asks for.
type meshCoverage struct {
	ZeroTrusts []*meshv1alpha1.ZeroTrust
	Pods       []zerotrust.Pod
	Coverage   zerotrust.Coverage
	Identities []zerotrust.Identity
	// ServiceAccounts and Phases are each pod's.
	ServiceAccounts map[types.NamespacedName]string
	Phases          map[types.NamespacedName]corev1.PodPhase
}

// readCoverage lists the ZeroTrusts and pods (the manager's cache keeps pods slim: metadata,
// service account and phase) and resolves the coverage.
func readCoverage(ctx context.Context, c client.Reader, operatorNamespace string) (*meshCoverage, error) {
	var zts meshv1alpha1.ZeroTrustList
	if err := c.List(ctx, &zts); err != nil {
		return nil, fmt.Errorf("listing ZeroTrusts: %w", err)
	}
	var podList corev1.PodList
	if err := c.List(ctx, &podList); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	m := &meshCoverage{
		ZeroTrusts:      make([]*meshv1alpha1.ZeroTrust, len(zts.Items)),
		Pods:            make([]zerotrust.Pod, 0, len(podList.Items)),
		ServiceAccounts: map[types.NamespacedName]string{},
		Phases:          map[types.NamespacedName]corev1.PodPhase{},
	}
	for i := range zts.Items {
		m.ZeroTrusts[i] = &zts.Items[i]
	}
	for i := range podList.Items {
		p := &podList.Items[i]
		// A pod being deleted needs no identity any more; a pod that ran to completion keeps its
		// until it is deleted.
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		pod := zerotrust.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, ServiceAccount: p.Spec.ServiceAccountName}
		m.Pods = append(m.Pods, pod)
		m.ServiceAccounts[pod.Key()] = pod.ServiceAccountName()
		m.Phases[pod.Key()] = p.Status.Phase
	}
	m.Coverage = zerotrust.Resolve(m.ZeroTrusts, m.Pods, operatorNamespace)
	m.Identities = zerotrust.Identities(m.Coverage, m.Pods)
	return m, nil
}
