// Package v1alpha1 holds the mesh.sluice.dev/v1alpha1 API: Rollout, TrafficPolicy and ZeroTrust.
//
// +kubebuilder:object:generate=true
// +groupName=mesh.sluice.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "mesh.sluice.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Rollout{}, &RolloutList{},
		&TrafficPolicy{}, &TrafficPolicyList{},
		&ZeroTrust{}, &ZeroTrustList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
