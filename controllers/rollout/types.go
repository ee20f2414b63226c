package rollout

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// PhasePromoting is the phase between the end of the steps and Promoted: the canary takes all the
// traffic, its template is copied to the stable Deployment, and traffic returns to stable once that
// Deployment runs the new revision.
const PhasePromoting = meshv1alpha1.RolloutPromoting

// Limits of the engine.
const (
	// MaxConsecutiveErrors is how many checks in a row may be inconclusive because a query failed
	// before the run is aborted: the engine does not release a canary it cannot see.
	MaxConsecutiveErrors = 5
	// EvidencePerMetric is how many of the latest results of each metric the State keeps.
	EvidencePerMetric = 5
	// DefaultInterval is the analysis interval when spec.analysis.interval is absent (the CRD
	// defaults it to the same value).
	DefaultInterval = time.Minute
)

// Input is everything Step looks at.
type Input struct {
	// Now is the time of this decision. Step reads no clock.
	Now time.Time
	// Generation is the Rollout's metadata.generation, for the conditions' observedGeneration.
	Generation int64
	// Spec is the Rollout's spec.
	Spec meshv1alpha1.RolloutSpec
	// State is the engine state stored in the Rollout's status; the zero State for a new Rollout.
	State State

	// Canary is the user's Deployment (spec.targetRef): it holds the desired template and runs
	// the canary. Its Revision is empty when the Deployment does not exist.
	Canary Workload
	// Stable is the <name>-primary Deployment that serves stable traffic. Its Revision is empty
	// when the Deployment does not exist (yet).
	Stable Workload
	// ProgrammedWeight is the canary weight the proxies apply: the weight of the last config built
	// from the Rollout that was published and acknowledged. Nil when unknown.
	ProgrammedWeight *int32

	// Checks are the analysis checks run since the last Step, oldest first. Checks already seen
	// (not after State.Analysis.LastCheckAt) are ignored, so handing one over twice is harmless.
	Checks []Check
	// Requests are the users' imperative requests, read from the Rollout's annotations (see
	// RequestsFromAnnotations). A request whose ID was already handled is ignored.
	Requests []Request
}

// Workload is what the reconciler observed of one Deployment.
type Workload struct {
	// Revision is the pod-template-hash of the Deployment's template; empty when it does not exist.
	// The stable Deployment gets the canary's template verbatim, so both hash alike.
	Revision string
	// Replicas is the Deployment's spec.replicas; 0 means scaled down.
	Replicas int32
	// Ready is true when the Deployment's rollout of Revision is complete: its observedGeneration
	// is current and every replica is updated and available.
	Ready bool
}

// Verdict is the outcome of one metric in a check, or of the whole check.
type Verdict string

// The verdicts.
const (
	// VerdictPass means the value is within the threshold range.
	VerdictPass Verdict = "Pass"
	// VerdictFail means the value is outside the threshold range.
	VerdictFail Verdict = "Fail"
	// VerdictInconclusive means the check says nothing; it never counts as a pass.
	VerdictInconclusive Verdict = "Inconclusive"
)

// InconclusiveReason says why a metric or a check was inconclusive.
type InconclusiveReason string

// The reasons for an inconclusive result. Error counts towards MaxConsecutiveErrors; the others
// only make the run wait.
const (
	// ReasonNoData is a query that returned no sample.
	ReasonNoData InconclusiveReason = "NoData"
	// ReasonNaN is a query that returned NaN or an infinity (typically a ratio over no traffic).
	ReasonNaN InconclusiveReason = "NaN"
	// ReasonTooFewRequests is a check whose canary served fewer than spec.analysis.minRequests.
	ReasonTooFewRequests InconclusiveReason = "TooFewRequests"
	// ReasonError is a query that failed or returned something that is not one number, or a
	// metric missing from the check.
	ReasonError InconclusiveReason = "Error"
)

// Check is one analysis check: every metric of spec.analysis queried once.
type Check struct {
	// Time is when the queries ran.
	Time time.Time
	// Revision is the canary revision the queries were about; a check about another revision is
	// ignored. Empty means the current one.
	Revision string
	// Requests is how many requests the canary served in the interval, compared with
	// spec.analysis.minRequests; nil when unknown (which, with minRequests set, is an error).
	Requests *int64
	// Metrics are the results, one per metric of spec.analysis (matched by name).
	Metrics []MetricResult
}

// MetricResult is one metric's result in a check, judged by the analysis runner.
type MetricResult struct {
	// Name is the metric's name in spec.analysis.metrics.
	Name string
	// Verdict is Pass or Fail when the query gave a number, Inconclusive otherwise.
	Verdict Verdict
	// Reason says why an Inconclusive verdict is inconclusive.
	Reason InconclusiveReason
	// Value is the number the query returned (NaN when there was none).
	Value float64
	// Min and Max are the threshold range the value was judged against.
	Min, Max *float64
	// Query is the PromQL that ran, with its variables filled in.
	Query string
	// Samples is how many series the query returned.
	Samples int
	// Error is the query's error, if any.
	Error string
}

// RequestKind is a kind of imperative request.
type RequestKind string

// The requests a user can make by annotating the Rollout (see RequestKind.Annotation).
const (
	// RequestPromote finishes the current step (a pause, or the wait at a weight) and goes on.
	RequestPromote RequestKind = "promote"
	// RequestPromoteFull skips the remaining steps and promotes the canary now.
	RequestPromoteFull RequestKind = "promote-full"
	// RequestAbort sends every request back to stable and scales the canary down.
	RequestAbort RequestKind = "abort"
	// RequestRetry starts an aborted run again from step 0, on the same revision.
	RequestRetry RequestKind = "retry"
	// RequestPause holds the rollout where it is until a resume.
	RequestPause RequestKind = "pause"
	// RequestResume ends a pause made by RequestPause.
	RequestResume RequestKind = "resume"
)

// RequestKinds lists every request kind, in the order RequestsFromAnnotations breaks ties.
var RequestKinds = []RequestKind{
	RequestAbort, RequestPause, RequestResume, RequestRetry, RequestPromote, RequestPromoteFull,
}

// Request is one imperative request.
type Request struct {
	Kind RequestKind
	// ID tells requests of one kind apart: a request is applied once, the first time Step sees an
	// ID it has not handled for that kind. The annotation's value, such as a timestamp.
	ID string
}

// State is the engine's memory between two Steps. The reconciler stores it in the Rollout's
// status (docs/rollout-engine.md lists the fields) and hands it back in the next Input; the JSON
// names are the proposed status field names.
type State struct {
	// Phase is where the rollout stands (PhasePromoting included).
	Phase meshv1alpha1.RolloutPhase `json:"phase,omitempty"`
	// Message explains the phase in a sentence.
	Message string `json:"message,omitempty"`
	// StableRevision is the revision the stable Deployment serves (once it has become stable).
	StableRevision string `json:"stableRevision,omitempty"`
	// CanaryRevision is the revision of the current (or last) run.
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// CurrentStepIndex is the step being run; len(steps) during and after promotion.
	CurrentStepIndex int32 `json:"currentStepIndex"`
	// CanaryWeight is the percentage of traffic the canary should receive.
	CanaryWeight int32 `json:"canaryWeight"`
	// StepsHash identifies the steps the run follows; a change restarts the run.
	StepsHash string `json:"stepsHash,omitempty"`
	// RunStartedAt is when the current run (or promotion) started.
	RunStartedAt *metav1.Time `json:"runStartedAt,omitempty"`
	// StepStartedAt is when the current step started (a timed pause ends Duration after it).
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`
	// WeightProgrammedAt is when the proxies were first seen applying the current setWeight
	// step's weight; the step's analysis interval counts from it.
	WeightProgrammedAt *metav1.Time `json:"weightProgrammedAt,omitempty"`
	// PausedByUser is true between a pause request and a resume (or promote) request.
	PausedByUser bool `json:"pausedByUser,omitempty"`
	// AbortReason is why the run was aborted (AnalysisFailed, AnalysisErrors, AbortedByUser);
	// kept until another run starts.
	AbortReason string `json:"abortReason,omitempty"`
	// FailureReason is the configuration problem behind the Failed phase (InvalidSpec,
	// TargetNotFound).
	FailureReason string `json:"failureReason,omitempty"`
	// Analysis is the analysis of the current run.
	Analysis AnalysisState `json:"analysis,omitzero"`
	// HandledRequests holds the last handled request ID of each kind.
	HandledRequests []HandledRequest `json:"handledRequests,omitempty"`
}

// AnalysisState is what the engine remembers of the current run's analysis.
type AnalysisState struct {
	// NextCheckAt is when the next check is due; nil when no analysis runs.
	NextCheckAt *metav1.Time `json:"nextCheckAt,omitempty"`
	// LastCheckAt is when the last counted check ran.
	LastCheckAt *metav1.Time `json:"lastCheckAt,omitempty"`
	// LastVerdict is the last counted check's verdict.
	LastVerdict Verdict `json:"lastVerdict,omitempty"`
	// PassedChecks, FailedChecks and InconclusiveChecks count the run's checks.
	PassedChecks       int32 `json:"passedChecks,omitempty"`
	FailedChecks       int32 `json:"failedChecks,omitempty"`
	InconclusiveChecks int32 `json:"inconclusiveChecks,omitempty"`
	// ConsecutiveErrors counts the checks in a row that were inconclusive because of an error.
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`
	// Metrics keeps, per metric in spec order, its latest results.
	Metrics []MetricEvidence `json:"metrics,omitempty"`
}

// MetricEvidence is the latest results of one metric.
type MetricEvidence struct {
	Name string `json:"name"`
	// Query is the last query that ran, cut to maxQueryLen characters.
	Query string `json:"query,omitempty"`
	// Threshold is the range the value must stay within, such as "min 99" or "max 500".
	Threshold string `json:"threshold,omitempty"`
	// Results are the latest results, oldest first, at most EvidencePerMetric.
	Results []MetricEvidenceResult `json:"results,omitempty"`
}

// MetricEvidenceResult is one metric's result in one check.
type MetricEvidenceResult struct {
	Time    metav1.Time        `json:"time"`
	Verdict Verdict            `json:"verdict"`
	Reason  InconclusiveReason `json:"reason,omitempty"`
	// Value is the value as text ("99.2", "NaN"); empty when there was none.
	Value string `json:"value,omitempty"`
	// Requests is the canary's request count in the interval, when known.
	Requests *int64 `json:"requests,omitempty"`
	// Error is the query's error, cut to maxErrorLen characters.
	Error string `json:"error,omitempty"`
}

// HandledRequest is the last handled request of one kind.
type HandledRequest struct {
	Kind RequestKind `json:"kind"`
	ID   string      `json:"id"`
}

// Decision is what Step decided.
type Decision struct {
	// State is the next state, for the Rollout's status.
	State State
	// Actions are for the reconciler to carry out, in order. Every action but Event describes a
	// level (a weight, a scale, a template) and is repeated until it is observed, so carrying one
	// out twice is harmless.
	Actions []Action
	// Conditions are the Rollout's conditions (see conditions.go); set them with
	// meta.SetStatusCondition so unchanged ones keep their lastTransitionTime.
	Conditions []metav1.Condition
	// RequeueAfter is when something time-based can next change (a pause ends, a check is due);
	// zero when only a change in the cluster can move the rollout on.
	RequeueAfter time.Duration
}
