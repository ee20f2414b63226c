package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutSpec says which workload to release progressively, through which Service, in which steps,
// and how Prometheus decides whether the canary is healthy.
type RolloutSpec struct {
	// targetRef names the Deployment whose new pod template is released as a canary.
	// +required
	TargetRef WorkloadRef `json:"targetRef"`

	// service is the Service clients call; Sluice splits its traffic between the stable and the
	// canary pods.
	// +required
	Service ServicePort `json:"service"`

	// strategy says how traffic moves to the new version.
	// +required
	Strategy RolloutStrategy `json:"strategy"`

	// analysis checks the canary's health with Prometheus at every interval; when the checks fail
	// more than failureLimit times the canary is rolled back. Without analysis, steps advance on
	// their pauses alone.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`
}

// WorkloadRef names the workload a Rollout releases, in the Rollout's namespace.
type WorkloadRef struct {
	// apiVersion of the workload. Only apps/v1 is supported.
	// +optional
	// +kubebuilder:default="apps/v1"
	// +kubebuilder:validation:Enum="apps/v1"
	APIVersion string `json:"apiVersion,omitempty"`

	// kind of the workload. Only Deployment is supported.
	// +required
	// +kubebuilder:validation:Enum=Deployment
	Kind string `json:"kind"`

	// name of the workload, in the Rollout's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ServicePort names a Service in the same namespace and one of its ports.
type ServicePort struct {
	// name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// port is the Service port whose traffic is split, for example 8080.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// RolloutStrategy holds the release strategy. Canary is the only one today.
type RolloutStrategy struct {
	// canary sends a growing share of traffic to the new version, step by step.
	// +required
	Canary *CanaryStrategy `json:"canary"`
}

// CanaryStrategy is a list of steps that raise the canary's traffic weight and pause between raises.
// +kubebuilder:validation:XValidation:rule="self.steps.exists(s, has(s.setWeight))",message="steps must contain at least one setWeight step, or the canary never receives traffic",fieldPath=".steps"
type CanaryStrategy struct {
	// steps run in order. Each step does exactly one thing: setWeight moves traffic to the canary,
	// pause waits (for a duration, or until a manual promote when it has none). After the last step
	// the canary is promoted to stable.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +listType=atomic
	Steps []CanaryStep `json:"steps"`

	// headerRoute sends every request that carries this header to the canary, whatever its weight,
	// so testers can reach it before real users do.
	// +optional
	HeaderRoute *HeaderMatch `json:"headerRoute,omitempty"`

	// mirrorPercent copies this percentage of the stable traffic to the canary; the copies' responses
	// are discarded. 0 turns mirroring off.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MirrorPercent *int32 `json:"mirrorPercent,omitempty"`
}

// CanaryStep is one step of a canary: set a weight, or pause.
// +kubebuilder:validation:XValidation:rule="has(self.setWeight) != has(self.pause)",message="each step sets exactly one action: setWeight or pause"
type CanaryStep struct {
	// setWeight is the percentage of traffic the canary receives from this step on, 0 to 100.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// pause holds the current weight. With a duration it waits that long (while analysis keeps
	// checking); with none ({}) it waits until the rollout is promoted by hand.
	// +optional
	Pause *RolloutPause `json:"pause,omitempty"`
}

// RolloutPause waits for a duration, or for a manual promote when the duration is absent.
type RolloutPause struct {
	// duration to wait, such as 30s, 5m or 1h. Absent means wait for a manual promote.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// Analysis checks a canary's health with Prometheus queries at a fixed interval.
type Analysis struct {
	// interval between two checks, such as 30s or 1m. It is also the range of the queries' rate
	// windows ({{ .Interval }} in a query).
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 500ms, 30s or 1m30s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// failureLimit is how many failed checks are tolerated; one more rolls the canary back.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	FailureLimit int32 `json:"failureLimit,omitempty"`

	// minRequests is how many requests the canary must have served in the interval before a check
	// counts. With fewer, the check waits: it neither passes nor fails.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinRequests *int32 `json:"minRequests,omitempty"`

	// prometheus overrides the Prometheus server the operator queries by default.
	// +optional
	Prometheus *PrometheusProvider `json:"prometheus,omitempty"`

	// metrics are checked at every interval; every one must be within its threshold for the check
	// to pass.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +listType=map
	// +listMapKey=name
	Metrics []AnalysisMetric `json:"metrics"`
}

// PrometheusProvider is a Prometheus server's HTTP address.
type PrometheusProvider struct {
	// address of the Prometheus HTTP API, such as http://prometheus.monitoring:9090.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="must be an http:// or https:// URL, such as http://prometheus.monitoring:9090"
	Address string `json:"address"`
}

// MetricTemplate names a built-in query that Sluice fills in for the canary's workload.
// +kubebuilder:validation:Enum=request-success-rate;request-duration
type MetricTemplate string

const (
	// MetricRequestSuccessRate is the percentage (0-100) of the canary's requests that did not
	// answer 5xx over the interval.
	MetricRequestSuccessRate MetricTemplate = "request-success-rate"
	// MetricRequestDuration is the canary's 99th percentile request duration over the interval,
	// in milliseconds.
	MetricRequestDuration MetricTemplate = "request-duration"
)

// AnalysisMetric is one Prometheus query and the range its result must stay within.
// +kubebuilder:validation:XValidation:rule="has(self.template) != has(self.query)",message="set exactly one of template (a built-in query) or query (your own PromQL)"
type AnalysisMetric struct {
	// name identifies the metric in status and events.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// template is a built-in query: request-success-rate (percent of non-5xx responses) or
	// request-duration (p99 in milliseconds), computed from the sidecars' metrics for the canary.
	// +optional
	Template MetricTemplate `json:"template,omitempty"`

	// query is your own PromQL; it must return a single number. {{ .Interval }}, {{ .Namespace }},
	// {{ .Name }} (the workload) and {{ .Service }} are replaced before it runs.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query,omitempty"`

	// thresholdRange is the range the result must stay within for the check to pass.
	// +required
	ThresholdRange ThresholdRange `json:"thresholdRange"`
}

// ThresholdRange bounds a metric's value; either bound may be absent.
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="set min, max or both"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="min must not be greater than max"
type ThresholdRange struct {
	// min is the lowest passing value, inclusive.
	// +optional
	Min *float64 `json:"min,omitempty"`

	// max is the highest passing value, inclusive.
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// RolloutPhase is where a rollout stands.
// +kubebuilder:validation:Enum=Pending;Progressing;Paused;Promoting;Promoted;RolledBack;Failed
type RolloutPhase string

// The phases of a rollout.
const (
	RolloutPending     RolloutPhase = "Pending"
	RolloutProgressing RolloutPhase = "Progressing"
	RolloutPaused      RolloutPhase = "Paused"
	// RolloutPromoting: the steps are done; the canary takes all the traffic while its template is
	// copied to the stable Deployment, then traffic returns to stable.
	RolloutPromoting  RolloutPhase = "Promoting"
	RolloutPromoted   RolloutPhase = "Promoted"
	RolloutRolledBack RolloutPhase = "RolledBack"
	RolloutFailed     RolloutPhase = "Failed"
)

// RolloutStatus is what the controller observed and did.
type RolloutStatus struct {
	Status `json:",inline"`

	// phase summarises the rollout: Pending, Progressing, Paused, Promoting, Promoted, RolledBack or
	// Failed.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`

	// canaryWeight is the percentage of traffic the canary receives now.
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`

	// currentStepIndex is the index of the step being run; it equals the number of steps once the
	// canary is promoted.
	// +optional
	CurrentStepIndex *int32 `json:"currentStepIndex,omitempty"`

	// stableRevision is the pod template hash serving stable traffic.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`

	// canaryRevision is the pod template hash of the canary being released.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`

	// message explains the phase in a sentence.
	// +optional
	Message string `json:"message,omitempty"`

	// stepsHash identifies the steps the current run follows; when they change the run starts over.
	// +optional
	StepsHash string `json:"stepsHash,omitempty"`

	// runStartedAt is when the current run (or promotion) started.
	// +optional
	RunStartedAt *metav1.Time `json:"runStartedAt,omitempty"`

	// stepStartedAt is when the current step started; a timed pause ends its duration later.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// weightProgrammedAt is when the proxies were first seen applying the current step's weight; the
	// step's analysis interval counts from then.
	// +optional
	WeightProgrammedAt *metav1.Time `json:"weightProgrammedAt,omitempty"`

	// pausedByUser is true between a pause request and a resume or promote request.
	// +optional
	PausedByUser bool `json:"pausedByUser,omitempty"`

	// abortReason is why the last run was aborted: AnalysisFailed, AnalysisErrors or AbortedByUser.
	// +optional
	AbortReason string `json:"abortReason,omitempty"`

	// failureReason is the configuration problem behind the Failed phase: InvalidSpec or
	// TargetNotFound.
	// +optional
	FailureReason string `json:"failureReason,omitempty"`

	// analysis is the current run's analysis: counters, schedule and the latest evidence.
	// +optional
	Analysis *RolloutAnalysisStatus `json:"analysis,omitempty"`

	// handledRequests holds the last handled request ID of each kind (the rollout.sluice.dev/<kind>
	// annotations), so that a request applies once.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +kubebuilder:validation:MaxItems=6
	HandledRequests []HandledRequest `json:"handledRequests,omitempty"`
}

// RolloutAnalysisStatus is the current run's analysis.
type RolloutAnalysisStatus struct {
	// nextCheckAt is when the next check is due.
	// +optional
	NextCheckAt *metav1.Time `json:"nextCheckAt,omitempty"`

	// lastCheckAt is when the last counted check ran.
	// +optional
	LastCheckAt *metav1.Time `json:"lastCheckAt,omitempty"`

	// lastVerdict is the last check's verdict: Pass, Fail or Inconclusive.
	// +optional
	// +kubebuilder:validation:Enum=Pass;Fail;Inconclusive
	LastVerdict string `json:"lastVerdict,omitempty"`

	// passedChecks counts the run's passed checks.
	// +optional
	PassedChecks int32 `json:"passedChecks,omitempty"`

	// failedChecks counts the run's failed checks; one more than failureLimit rolls the canary back.
	// +optional
	FailedChecks int32 `json:"failedChecks,omitempty"`

	// inconclusiveChecks counts the run's checks that said nothing (no data, NaN, too few
	// requests, a query error); they never count as a pass.
	// +optional
	InconclusiveChecks int32 `json:"inconclusiveChecks,omitempty"`

	// consecutiveErrors counts the checks in a row whose queries failed; 5 abort the run.
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`

	// metrics are the latest results of each metric, in spec order.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	Metrics []MetricEvidence `json:"metrics,omitempty"`
}

// MetricEvidence is the latest results of one analysis metric.
type MetricEvidence struct {
	// name of the metric in spec.analysis.metrics.
	// +required
	Name string `json:"name"`

	// query is the last PromQL that ran, variables filled in, cut to 1024 characters.
	// +optional
	Query string `json:"query,omitempty"`

	// threshold is the range the value must stay within, such as "min 99".
	// +optional
	Threshold string `json:"threshold,omitempty"`

	// results are the latest results, oldest first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	Results []MetricEvidenceResult `json:"results,omitempty"`
}

// MetricEvidenceResult is one metric's result in one check.
type MetricEvidenceResult struct {
	// time the query ran.
	// +required
	Time metav1.Time `json:"time"`

	// verdict of the result: Pass, Fail or Inconclusive.
	// +required
	// +kubebuilder:validation:Enum=Pass;Fail;Inconclusive
	Verdict string `json:"verdict"`

	// reason an inconclusive result is inconclusive: NoData, NaN, TooFewRequests or Error.
	// +optional
	Reason string `json:"reason,omitempty"`

	// value as text ("99.2", "NaN"): text because a NaN has no JSON number.
	// +optional
	Value string `json:"value,omitempty"`

	// requests is how many requests the canary served in the interval, when known.
	// +optional
	Requests *int64 `json:"requests,omitempty"`

	// error of the query, cut to 256 bytes.
	// +optional
	Error string `json:"error,omitempty"`
}

// HandledRequest is the last handled imperative request of one kind.
type HandledRequest struct {
	// kind of request: promote, promote-full, abort, retry, pause or resume.
	// +required
	// +kubebuilder:validation:Enum=promote;promote-full;abort;retry;pause;resume
	Kind string `json:"kind"`

	// id is the annotation value last handled for this kind (a long one as a digest).
	// +required
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
}

// Rollout releases a new version of a Deployment progressively: a canary's share of traffic steps up
// while Prometheus says it is healthy, and goes back to zero when it is not.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sro,categories=sluice
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`,description="Percentage of traffic the canary receives"
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStepIndex`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the release the user asks for.
	// +required
	Spec RolloutSpec `json:"spec"`

	// status is what the controller observed and did.
	// +optional
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}
