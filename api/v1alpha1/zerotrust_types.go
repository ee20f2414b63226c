package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ZeroTrustSpec gives the selected workloads SPIFFE identities, says whether their traffic must be
// mutual TLS, and lists who may call what.
// +kubebuilder:validation:XValidation:rule="has(self.identity) || self.mtls.mode == 'DISABLE'",message="identity is required unless mtls.mode is DISABLE: name the cert-manager issuer that signs workload certificates",fieldPath=".identity"
type ZeroTrustSpec struct {
	// selector picks the workloads (pods) in this namespace the policy applies to; an empty or
	// omitted selector picks every workload in the namespace, and in the operator's namespace makes
	// the ZeroTrust mesh-wide. Each pod is covered by one ZeroTrust: one whose non-empty selector
	// matches it (the one with the most requirements), else the namespace's, else the mesh-wide
	// one; of two at the same level the older wins and the newer is reported Conflicted.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// mtls says whether the selected workloads accept plain-text traffic.
	// +required
	MTLS MutualTLS `json:"mtls"`

	// identity says how workload certificates are issued.
	// +optional
	Identity *Identity `json:"identity,omitempty"`

	// rules list the calls that are allowed. With no rules every authenticated caller is allowed;
	// with rules, a call to a selected workload that no rule allows is denied (403).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// MTLSMode is how strictly mutual TLS is required.
// +kubebuilder:validation:Enum=STRICT;PERMISSIVE;DISABLE
type MTLSMode string

// The mutual TLS modes.
const (
	// MTLSStrict accepts only mutual TLS connections.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts both mutual TLS and plain text, for migrations.
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSDisable turns mutual TLS off.
	MTLSDisable MTLSMode = "DISABLE"
)

// MutualTLS configures mutual TLS between workloads.
type MutualTLS struct {
	// mode is STRICT (mutual TLS only), PERMISSIVE (mutual TLS or plain text, for migrations) or
	// DISABLE.
	// +optional
	// +kubebuilder:default=STRICT
	Mode MTLSMode `json:"mode,omitempty"`
}

// Identity says which cert-manager issuer signs the workloads' SPIFFE certificates and for how long.
// +kubebuilder:validation:XValidation:rule="duration(self.renewBefore) < duration(self.duration)",message="renewBefore must be shorter than duration",fieldPath=".renewBefore"
type Identity struct {
	// issuerRef is the cert-manager Issuer or ClusterIssuer that signs workload certificates.
	// +required
	IssuerRef IssuerRef `json:"issuerRef"`

	// trustDomain is the SPIFFE trust domain: identities are spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
	// +optional
	// +kubebuilder:default="cluster.local"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	TrustDomain string `json:"trustDomain,omitempty"`

	// duration is how long a workload certificate is valid, such as 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// renewBefore is how long before expiry a certificate is renewed, such as 8h.
	// +optional
	// +kubebuilder:default="8h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// IssuerRef names a cert-manager issuer.
type IssuerRef struct {
	// group of the issuer's API.
	// +optional
	// +kubebuilder:default="cert-manager.io"
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`

	// kind is Issuer (in this namespace) or ClusterIssuer.
	// +optional
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	Kind string `json:"kind,omitempty"`

	// name of the issuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// AuthorizationRule allows the listed callers to make the described calls.
type AuthorizationRule struct {
	// name identifies the rule in status, metrics and access logs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// to describes the calls the rule allows.
	// +required
	To AuthorizationTarget `json:"to"`

	// from lists the callers the rule allows; a caller that matches any entry is allowed.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	From []AuthorizationSource `json:"from"`
}

// AuthorizationTarget describes calls: to which Service, on which ports, paths and methods.
type AuthorizationTarget struct {
	// service in this namespace that is called.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`

	// ports of the Service the call may reach; empty means any.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	Ports []int32 `json:"ports,omitempty"`

	// paths the call may use; empty means any. A path is exact (/healthz), a prefix ending in
	// * (/api/*) or a suffix starting with * (*.json).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('/') || self.startsWith('*')",message="a path starts with / (exact or prefix, /api/*) or * (suffix, *.json)"
	// +listType=set
	Paths []string `json:"paths,omitempty"`

	// methods the call may use; empty means any.
	// +optional
	// +kubebuilder:validation:MaxItems=9
	// +listType=set
	Methods []HTTPMethod `json:"methods,omitempty"`
}

// AuthorizationSource is a caller: a service account, every workload of a namespace, or a SPIFFE
// principal.
// +kubebuilder:validation:XValidation:rule="has(self.principal) ? !has(self.serviceAccount) && !has(self.namespace) : (has(self.serviceAccount) || has(self.namespace))",message="set principal alone, or serviceAccount and/or namespace"
type AuthorizationSource struct {
	// serviceAccount of the calling workload; in this namespace unless namespace is also set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// namespace of the calling workloads; alone it allows every workload of that namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// principal is a caller's full SPIFFE ID, such as spiffe://cluster.local/ns/ops/sa/prober.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^spiffe://[^/]+(/.*)?$`
	Principal string `json:"principal,omitempty"`
}

// ZeroTrustStatus is what the controller observed and did.
type ZeroTrustStatus struct {
	Status `json:",inline"`

	// workloads is how many pods this ZeroTrust covers: the pods it selects that no more specific
	// (or, at the same scope, older) ZeroTrust covers instead.
	// +optional
	Workloads int32 `json:"workloads,omitempty"`

	// nextRenewal is the earliest time cert-manager will renew one of the workload certificates
	// issued for this ZeroTrust (the earliest status.renewalTime of its Certificates); empty while
	// none is issued.
	// +optional
	NextRenewal *metav1.Time `json:"nextRenewal,omitempty"`

	// mtls says how far the covered running pods are from mutual TLS everywhere: which have a
	// Ready certificate and a connected proxy (an Envoy sidecar or a proxyless gRPC bootstrap).
	// The condition StrictReady sums it up. Empty when mTLS is DISABLE.
	// +optional
	MTLS *MTLSStatus `json:"mtls,omitempty"`
}

// ConditionStrictReady is True when every running pod a STRICT ZeroTrust covers has a Ready
// certificate and a connected proxy (reason Ready); on a PERMISSIVE one, True (reason
// SafeToEnforce) when switching it to STRICT would leave no covered pod without them.
const ConditionStrictReady = "StrictReady"

// MTLSStatus counts the covered running pods that could serve and call over mutual TLS.
type MTLSStatus struct {
	// runningPods is how many covered pods are running.
	RunningPods int32 `json:"runningPods"`

	// withCertificate is how many of them have a Ready identity certificate.
	WithCertificate int32 `json:"withCertificate"`

	// withProxy is how many of them have a proxy connected to the xDS server: an Envoy sidecar
	// or a proxyless gRPC application with Sluice's bootstrap.
	WithProxy int32 `json:"withProxy"`

	// safeToEnforce is true when every running covered pod has both: STRICT refuses no mesh
	// traffic of theirs (callers outside the mesh are refused all the same).
	SafeToEnforce bool `json:"safeToEnforce"`

	// notReady names up to 10 running pods that lack one of them, with what they lack.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	NotReady []string `json:"notReady,omitempty"`
}

// ZeroTrust secures a namespace's workloads: SPIFFE identities issued by cert-manager, mutual TLS in
// STRICT or PERMISSIVE mode, and rules saying who may call what.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=zt,categories=sluice
// +kubebuilder:printcolumn:name="mTLS",type=string,JSONPath=`.spec.mtls.mode`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.identity.issuerRef.name`
// +kubebuilder:printcolumn:name="Workloads",type=integer,JSONPath=`.status.workloads`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Strict Ready",type=string,JSONPath=`.status.conditions[?(@.type=="StrictReady")].status`,priority=1
// +kubebuilder:printcolumn:name="Next Renewal",type=string,JSONPath=`.status.nextRenewal`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ZeroTrust struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the security the user asks for.
	// +required
	Spec ZeroTrustSpec `json:"spec"`

	// status is what the controller observed and did.
	// +optional
	Status ZeroTrustStatus `json:"status,omitempty"`
}

// ZeroTrustList is a list of ZeroTrusts.
//
// +kubebuilder:object:root=true
type ZeroTrustList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ZeroTrust `json:"items"`
}
