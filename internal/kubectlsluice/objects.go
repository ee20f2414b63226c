package kubectlsluice

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// withoutManagedFields is the Rollout as `kubectl get -o yaml` shows it: with its kind, without
// the managed fields.
func withoutManagedFields(ro *meshv1alpha1.Rollout) *meshv1alpha1.Rollout {
	ro = ro.DeepCopy()
	ro.ManagedFields = nil
	ro.APIVersion, ro.Kind = meshv1alpha1.GroupVersion.String(), "Rollout"
	return ro
}
