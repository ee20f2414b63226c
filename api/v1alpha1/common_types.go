package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by every kind. Ready follows the kstatus convention (True when the
// object's intent is in effect); Reconciling and Stalled are the kstatus "abnormal-true"
// conditions, set only while they hold.
const (
	// ConditionReady is True when everything the object asks for is in effect.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still working towards the spec.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress without a change.
	ConditionStalled = "Stalled"
	// ConditionAccepted is True when the spec is valid and consistent with the cluster.
	ConditionAccepted = "Accepted"
	// ConditionProgrammed is True when every proxy has acknowledged the config built from the object.
	ConditionProgrammed = "Programmed"
)

// Status is the part of the status every kind shares.
type Status struct {
	// observedGeneration is the metadata.generation the status describes. When it lags behind
	// metadata.generation the controller has not yet acted on the latest spec.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the object's state: Ready, Reconciling, Stalled, Accepted and Programmed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// HeaderMatch matches one request header by exact value, prefix or regular expression, or by
// being present.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.regex), has(self.present)].filter(x, x).size() == 1",message="set exactly one of exact, prefix, regex or present"
// +kubebuilder:validation:XValidation:rule="!has(self.present) || self.present",message="present must be true; leave the header out of the match to accept any request"
type HeaderMatch struct {
	// name of the header, case-insensitive, for example x-canary.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`

	// exact matches when the header's value equals this string.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exact *string `json:"exact,omitempty"`

	// prefix matches when the header's value starts with this string.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Prefix *string `json:"prefix,omitempty"`

	// regex matches when the whole header value matches this RE2 regular expression.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`

	// present matches when the request carries the header, whatever its value.
	// +optional
	Present *bool `json:"present,omitempty"`
}
