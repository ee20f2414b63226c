package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Step decides what the rollout does next. It is pure: it reads nothing but in, and the same in
// always gives the same Decision. It does not modify in.
func Step(in Input) Decision {
	e := &engine{in: in, st: in.State.clone()}
	e.run()
	e.scheduleAnalysis()
	return Decision{
		State:        e.st,
		Actions:      e.actions(),
		Conditions:   conditions(&e.st, in.Generation, in.Now),
		RequeueAfter: e.requeueAfter(),
	}
}

// engine is one Step's working memory.
type engine struct {
	in     Input
	st     State
	plan   plan
	events []Action
	// restarted is set when a run started in this Step: the checks in the Input measured the
	// revision or the run before it.
	restarted bool
}

func (e *engine) run() {
	p, problem := compile(e.in.Spec)
	e.plan = p
	e.normalize()
	latest := e.in.Canary.Revision
	switch {
	case problem != "":
		e.fail("InvalidSpec", problem)
	case latest == "" && e.st.Phase == meshv1alpha1.RolloutPending:
		e.st.Message = fmt.Sprintf("waiting for Deployment %s", e.in.Spec.TargetRef.Name)
	case latest == "":
		e.fail("TargetNotFound", fmt.Sprintf("Deployment %s (spec.targetRef) does not exist", e.in.Spec.TargetRef.Name))
	case e.st.Phase == meshv1alpha1.RolloutPending || e.st.Phase == meshv1alpha1.RolloutFailed:
		e.baseline()
	}
	e.handleRequests()
	if e.st.Phase == meshv1alpha1.RolloutFailed || e.st.Phase == meshv1alpha1.RolloutPending {
		return
	}
	if isRunning(e.st.Phase) && e.st.StepsHash != e.plan.hash && latest == e.st.CanaryRevision {
		e.startRun(latest, "StepsChanged", "the steps changed; the run starts over from step 0")
	}
	e.st.StepsHash = e.plan.hash
	e.processChecks()
	// Go as far as this Input allows: every pass moves a step or changes the phase, or ends the loop.
	for range 2*len(e.plan.steps) + 8 {
		before := e.mark()
		switch e.st.Phase {
		case meshv1alpha1.RolloutProgressing, meshv1alpha1.RolloutPaused:
			e.progress()
		case PhasePromoting:
			e.promote()
		case meshv1alpha1.RolloutPromoted:
			e.idle()
		case meshv1alpha1.RolloutRolledBack:
			e.rolledBack()
		}
		if e.mark() == before {
			break
		}
	}
}

// mark is what a pass of the loop may change.
type mark struct {
	phase          meshv1alpha1.RolloutPhase
	step, weight   int32
	canary, stable string
}

func (e *engine) mark() mark {
	return mark{e.st.Phase, e.st.CurrentStepIndex, e.st.CanaryWeight, e.st.CanaryRevision, e.st.StableRevision}
}

// normalize makes any stored State one the engine can work from: a known phase, a step index and
// a weight in range, and a stable revision for every phase that needs one.
func (e *engine) normalize() {
	st := &e.st
	var n int32
	if c := e.in.Spec.Strategy.Canary; c != nil {
		n = int32(len(c.Steps))
	}
	st.CurrentStepIndex = min(max(st.CurrentStepIndex, 0), n)
	st.CanaryWeight = min(max(st.CanaryWeight, 0), 100)
	switch st.Phase {
	case meshv1alpha1.RolloutProgressing, meshv1alpha1.RolloutPaused, meshv1alpha1.RolloutPromoted, meshv1alpha1.RolloutRolledBack:
		if st.StableRevision == "" {
			st.Phase = meshv1alpha1.RolloutPending // nothing to fall back on: start from the beginning
		}
	case PhasePromoting:
		if st.CanaryRevision == "" {
			st.Phase = meshv1alpha1.RolloutPending // promoting nothing
		}
	case meshv1alpha1.RolloutPending, meshv1alpha1.RolloutFailed:
	default:
		st.Phase = meshv1alpha1.RolloutPending
	}
	switch st.Phase {
	case meshv1alpha1.RolloutPending:
		st.CanaryWeight = 0
	case PhasePromoting, meshv1alpha1.RolloutPromoted:
		st.CurrentStepIndex = n // past the last step, whatever the steps are now
	}
}

// baseline decides where a new, failed or unreadable rollout stands, from what the cluster runs.
func (e *engine) baseline() {
	st := &e.st
	latest := e.in.Canary.Revision
	stable := st.StableRevision
	if e.in.Stable.Revision != "" && e.in.Stable.Ready {
		stable = e.in.Stable.Revision
	}
	st.FailureReason = ""
	switch {
	case stable == "":
		// Nothing serves as stable yet: the user's Deployment keeps all the traffic while its
		// template is copied to the stable Deployment.
		*st = State{Phase: PhasePromoting, CanaryRevision: latest, CurrentStepIndex: int32(len(e.plan.steps)),
			CanaryWeight: 100, StepsHash: e.plan.hash, RunStartedAt: e.stamp(), StepStartedAt: e.stamp(),
			PausedByUser: st.PausedByUser, HandledRequests: st.HandledRequests}
		e.restarted = true
		e.normal("Initializing", "copying revision %s to the stable Deployment %s", latest, e.stableName())
	case latest == stable:
		e.becomeIdle(stable)
		e.normal("Promoted", "revision %s is stable", stable)
	case latest == st.CanaryRevision && st.AbortReason != "" && st.StableRevision == stable:
		st.Phase, st.CanaryWeight = meshv1alpha1.RolloutRolledBack, 0
		st.Message = fmt.Sprintf("revision %s was rolled back (%s); waiting for a new revision or a retry", latest, st.AbortReason)
	default:
		st.StableRevision = stable
		e.startRun(latest, "RunStarted", fmt.Sprintf("releasing revision %s; stable is %s", latest, stable))
	}
}

// progress runs the current step of a running canary.
func (e *engine) progress() {
	st := &e.st
	switch latest := e.in.Canary.Revision; latest {
	case st.StableRevision:
		e.becomeIdle(latest)
		e.normal("RevertedToStable", "the Deployment's template is back to the stable revision %s; the run ends", latest)
		return
	case st.CanaryRevision:
	default:
		e.startRun(latest, "RunRestarted", fmt.Sprintf("revision %s replaced %s mid-run; the run starts over from step 0",
			latest, st.CanaryRevision))
		return
	}
	if int(st.CurrentStepIndex) >= len(e.plan.steps) {
		e.startPromotion("every step completed")
		return
	}
	e.settlePhase()
	step := e.plan.steps[st.CurrentStepIndex]
	if step.SetWeight != nil {
		e.setWeightStep(*step.SetWeight)
	} else {
		e.pauseStep(step.Pause)
	}
}

func (e *engine) setWeightStep(w int32) {
	st := &e.st
	if st.CanaryWeight != w {
		switch {
		case st.PausedByUser:
			st.Message = fmt.Sprintf("paused by request at %s; the weight stays %d%%", e.stepName(), st.CanaryWeight)
			return
		case w > st.CanaryWeight && !e.in.Canary.Ready:
			st.Message = fmt.Sprintf("%s: waiting for the canary pods of revision %s to be ready", e.stepName(), st.CanaryRevision)
			return
		}
		e.normal("WeightChanged", "%s: canary weight %d%% → %d%%", e.stepName(), st.CanaryWeight, w)
		st.CanaryWeight, st.WeightProgrammedAt = w, nil
	}
	if !e.programmed(w) {
		st.Message = fmt.Sprintf("%s: waiting for the proxies to apply %d%%", e.stepName(), w)
		return
	}
	if st.WeightProgrammedAt == nil {
		st.WeightProgrammedAt = e.stamp()
		if e.plan.analysis != nil && w > 0 {
			// One whole interval at this weight before the check that lets the step end.
			st.Analysis.NextCheckAt = &metav1.Time{Time: st.WeightProgrammedAt.Add(e.plan.analysis.interval)}
		}
	}
	if st.PausedByUser {
		st.Message = fmt.Sprintf("paused by request at %s (%d%%)", e.stepName(), w)
		return
	}
	if why := e.gate(true); why != "" {
		st.Message = fmt.Sprintf("%s: %s", e.stepName(), why)
		return
	}
	e.normal("StepCompleted", "%s completed", e.stepName())
	e.advance()
}

func (e *engine) pauseStep(p *meshv1alpha1.RolloutPause) {
	st := &e.st
	if p.Duration == nil {
		st.Message = fmt.Sprintf("%s: waiting for a promote (%s) at %d%%", e.stepName(), RequestPromote.Annotation(), st.CanaryWeight)
		return
	}
	if st.PausedByUser {
		st.Message = fmt.Sprintf("paused by request at %s (%d%%)", e.stepName(), st.CanaryWeight)
		return
	}
	if st.StepStartedAt == nil {
		st.StepStartedAt = e.stamp()
	}
	end := st.StepStartedAt.Add(p.Duration.Duration)
	if e.in.Now.Before(end) {
		st.Message = fmt.Sprintf("%s: pausing at %d%% until %s", e.stepName(), st.CanaryWeight, end.UTC().Format(time.RFC3339))
		return
	}
	if why := e.gate(false); why != "" {
		st.Message = fmt.Sprintf("%s: the pause is over; %s", e.stepName(), why)
		return
	}
	e.normal("StepCompleted", "%s completed", e.stepName())
	e.advance()
}

// advance moves to the next step.
func (e *engine) advance() {
	st := &e.st
	st.CurrentStepIndex++
	st.StepStartedAt, st.WeightProgrammedAt = e.stamp(), nil
	e.settlePhase()
	if int(st.CurrentStepIndex) < len(e.plan.steps) {
		st.Message = e.stepName()
	}
}

// promote carries a promotion through: all traffic to the canary, its template to the stable
// Deployment, and once that runs the revision, all traffic back to stable.
func (e *engine) promote() {
	st := &e.st
	rev := st.CanaryRevision
	if latest := e.in.Canary.Revision; latest != rev && !e.copyMayHaveStarted() {
		// Nothing of the promotion reached stable yet: the new revision replaces it.
		if latest == st.StableRevision {
			e.becomeIdle(latest)
			e.normal("RevertedToStable", "the Deployment's template is back to the stable revision %s; the promotion ends", latest)
			return
		}
		e.startRun(latest, "RunRestarted", fmt.Sprintf("revision %s replaced %s before its promotion reached stable; the run starts over",
			latest, rev))
		return
	}
	if st.StableRevision != rev {
		if st.CanaryWeight != 100 {
			if !e.in.Canary.Ready {
				st.Message = fmt.Sprintf("promoting %s: waiting for the canary pods to be ready to take all the traffic", rev)
				return
			}
			e.normal("WeightChanged", "promoting %s: canary weight %d%% → 100%% while the stable Deployment is updated", rev, st.CanaryWeight)
			st.CanaryWeight = 100
		}
		if !e.programmed(100) && e.in.Stable.Revision != rev {
			st.Message = fmt.Sprintf("promoting %s: waiting for the proxies to send it all the traffic", rev)
			return
		}
		if e.in.Stable.Revision != rev || !e.in.Stable.Ready {
			st.Message = fmt.Sprintf("promoting %s: waiting for the stable Deployment %s to run it", rev, e.stableName())
			return
		}
		st.StableRevision, st.CanaryWeight = rev, 0
		e.normal("StableUpdated", "the stable Deployment %s runs revision %s; sending it all the traffic", e.stableName(), rev)
	}
	if !e.programmed(0) {
		st.Message = fmt.Sprintf("promoting %s: waiting for the proxies to send all the traffic to stable", rev)
		return
	}
	e.becomeIdle(rev)
	e.normal("Promoted", "revision %s is promoted and serves all the traffic", rev)
}

// copyMayHaveStarted says whether the promotion may have asked for the template copy (which is
// asked for once the proxies send the canary all the traffic): from then on it cannot be aborted or
// replaced, only finished. An initialization has no stable to go back to.
func (e *engine) copyMayHaveStarted() bool {
	st, in := &e.st, &e.in
	return st.StableRevision == "" || st.StableRevision == st.CanaryRevision || in.Stable.Revision == st.CanaryRevision ||
		in.ProgrammedWeight == nil || *in.ProgrammedWeight == 100
}

// idle watches a promoted rollout for a new revision.
func (e *engine) idle() {
	st := &e.st
	if latest := e.in.Canary.Revision; latest != st.StableRevision {
		e.startRun(latest, "RunStarted", fmt.Sprintf("releasing revision %s; stable is %s", latest, st.StableRevision))
		return
	}
	if st.CanaryRevision != st.StableRevision || st.CanaryWeight != 0 {
		e.becomeIdle(st.StableRevision) // a State stored half-way
	}
}

// rolledBack waits for a new revision; a retry is a request.
func (e *engine) rolledBack() {
	st := &e.st
	st.CanaryWeight = 0
	switch latest := e.in.Canary.Revision; latest {
	case st.StableRevision:
		e.becomeIdle(latest)
		e.normal("RevertedToStable", "the Deployment's template is back to the stable revision %s", latest)
	case st.CanaryRevision:
	default:
		e.startRun(latest, "RunStarted", fmt.Sprintf("releasing revision %s after %s was rolled back", latest, st.CanaryRevision))
	}
}

// startRun starts a canary run of rev from step 0 at weight 0, forgetting the analysis of any
// previous run. A pause by request holds.
func (e *engine) startRun(rev, reason, message string) {
	st := &e.st
	*st = State{Phase: meshv1alpha1.RolloutProgressing, StableRevision: st.StableRevision, CanaryRevision: rev,
		StepsHash: e.plan.hash, RunStartedAt: e.stamp(), StepStartedAt: e.stamp(),
		PausedByUser: st.PausedByUser, HandledRequests: st.HandledRequests}
	e.restarted = true
	e.settlePhase()
	st.Message = message
	e.normal(reason, "%s", message)
}

func (e *engine) startPromotion(why string) {
	st := &e.st
	st.Phase = PhasePromoting
	st.CurrentStepIndex = int32(len(e.plan.steps))
	st.StepStartedAt, st.WeightProgrammedAt = e.stamp(), nil
	st.Message = fmt.Sprintf("promoting revision %s: %s", st.CanaryRevision, why)
	e.normal("Promoting", "%s", st.Message)
}

// abort sends all the traffic back to stable; the canary is scaled down once none reaches it.
func (e *engine) abort(reason, message string) {
	st := &e.st
	st.Phase, st.AbortReason, st.CanaryWeight = meshv1alpha1.RolloutRolledBack, reason, 0
	st.WeightProgrammedAt = nil
	where := "at " + e.stepName()
	if int(st.CurrentStepIndex) >= len(e.plan.steps) {
		where = "during its promotion"
	}
	st.Message = fmt.Sprintf("revision %s rolled back %s: %s", st.CanaryRevision, where, message)
	e.warning("RolledBack", "%s", st.Message)
}

// becomeIdle records rev as stable and serving everything.
func (e *engine) becomeIdle(rev string) {
	st := &e.st
	st.Phase, st.StableRevision, st.CanaryRevision, st.CanaryWeight = meshv1alpha1.RolloutPromoted, rev, rev, 0
	st.CurrentStepIndex = int32(len(e.plan.steps))
	st.StepStartedAt, st.WeightProgrammedAt, st.AbortReason, st.FailureReason = nil, nil, "", ""
	st.Analysis.NextCheckAt = nil
	st.Message = fmt.Sprintf("revision %s is stable and serves all the traffic", rev)
}

// fail stops on a configuration problem. With a stable Deployment to fall back on, all the traffic
// goes to it.
func (e *engine) fail(reason, message string) {
	st := &e.st
	if st.Phase != meshv1alpha1.RolloutFailed || st.Message != message {
		e.warning(reason, "%s", message)
	}
	st.Phase, st.FailureReason, st.Message = meshv1alpha1.RolloutFailed, reason, message
	if st.StableRevision != "" {
		st.CanaryWeight = 0
	}
}

// settlePhase sets Paused or Progressing for a running canary.
func (e *engine) settlePhase() {
	st := &e.st
	if !isRunning(st.Phase) {
		return
	}
	st.Phase = meshv1alpha1.RolloutProgressing
	if st.PausedByUser || e.manualPause() {
		st.Phase = meshv1alpha1.RolloutPaused
	}
}

// currentPause returns the current step's pause duration: 0 when it is not a timed pause.
func (e *engine) currentPause() time.Duration {
	i := int(e.st.CurrentStepIndex)
	if i >= len(e.plan.steps) {
		return 0
	}
	if p := e.plan.steps[i].Pause; p != nil && p.Duration != nil {
		return p.Duration.Duration
	}
	return 0
}

// manualPause says whether the current step is a pause without a duration.
func (e *engine) manualPause() bool {
	i := int(e.st.CurrentStepIndex)
	return i < len(e.plan.steps) && e.plan.steps[i].Pause != nil && e.plan.steps[i].Pause.Duration == nil
}

// programmed says whether the proxies apply weight w.
func (e *engine) programmed(w int32) bool {
	return e.in.ProgrammedWeight != nil && *e.in.ProgrammedWeight == w
}

// requeueAfter is the time until the end of the current timed pause or the next check, whichever
// comes first.
func (e *engine) requeueAfter() time.Duration {
	st := &e.st
	var next time.Duration
	consider := func(at time.Time) {
		d := max(at.Sub(e.in.Now), time.Second) // due already: look again shortly
		if next == 0 || d < next {
			next = d
		}
	}
	if isRunning(st.Phase) && !st.PausedByUser && e.currentPause() > 0 && st.StepStartedAt != nil {
		if end := st.StepStartedAt.Add(e.currentPause()); end.After(e.in.Now) {
			consider(end)
		}
	}
	if st.Analysis.NextCheckAt != nil {
		consider(st.Analysis.NextCheckAt.Time)
	}
	return next
}

// stamp is Now as the State stores it: rounded up to the second, which is all a metav1.Time keeps
// in the API server, so a State read back from status decides like the one written.
func (e *engine) stamp() *metav1.Time {
	return &metav1.Time{Time: ceilSecond(e.in.Now)}
}

func ceilSecond(t time.Time) time.Time {
	t = t.Round(0).UTC()
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}

func isRunning(p meshv1alpha1.RolloutPhase) bool {
	return p == meshv1alpha1.RolloutProgressing || p == meshv1alpha1.RolloutPaused
}

func (e *engine) stepName() string { return e.plan.describe(e.st.CurrentStepIndex) }

func (e *engine) stableName() string { return e.in.Spec.TargetRef.Name + "-primary" }

func (e *engine) normal(reason, format string, args ...any) {
	e.events = append(e.events, Event{Type: EventNormal, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (e *engine) warning(reason, format string, args ...any) {
	e.events = append(e.events, Event{Type: EventWarning, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// clone copies the State deeply enough that Step never writes into its Input.
func (s State) clone() State {
	s.HandledRequests = append([]HandledRequest(nil), s.HandledRequests...)
	metrics := make([]MetricEvidence, len(s.Analysis.Metrics))
	for i, m := range s.Analysis.Metrics {
		m.Results = append([]MetricEvidenceResult(nil), m.Results...)
		metrics[i] = m
	}
	if s.Analysis.Metrics != nil {
		s.Analysis.Metrics = metrics
	}
	return s
}
