package rollout

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Action is one thing the reconciler carries out: SetWeight, ScaleCanary, CopyTemplateToStable or
// Event. Switch on its type.
type Action interface {
	isAction()
}

// SetWeight asks for the Rollout's traffic split to give the canary Weight percent: write
// State.CanaryWeight to status.canaryWeight so the proxies get the new routes. It is repeated until
// Input.ProgrammedWeight reports Weight.
type SetWeight struct {
	Weight int32
}

// ScaleCanary scales the canary (the user's Deployment) up to its replicas, or down to zero. It is
// repeated until Input.Canary.Replicas agrees.
type ScaleCanary struct {
	Up bool
}

// CopyTemplateToStable copies the canary's pod template (of Revision) to the stable Deployment. It
// is repeated until Input.Stable.Revision is Revision.
type CopyTemplateToStable struct {
	Revision string
}

// Event is a Kubernetes event to record on the Rollout.
type Event struct {
	// Type is EventNormal or EventWarning.
	Type    string
	Reason  string
	Message string
}

// Event types, as Kubernetes spells them.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

func (SetWeight) isAction()            {}
func (ScaleCanary) isAction()          {}
func (CopyTemplateToStable) isAction() {}
func (Event) isAction()                {}

// actions turns the decided state into the level actions still to carry out, given what the
// reconciler observed, followed by the events. The order is safe to follow as it comes: scale up
// before sending traffic, move traffic before scaling down.
func (e *engine) actions() []Action {
	st, in := &e.st, &e.in
	var out []Action
	if st.Phase == meshv1alpha1.RolloutPending {
		return e.withEvents(out)
	}
	programmedZero := in.ProgrammedWeight != nil && *in.ProgrammedWeight == 0
	// The canary runs while a run or a promotion needs it, and until no traffic reaches it.
	// Failed leaves the scale alone: the Deployment may be missing, or the spec wrong.
	canaryNeeded := isRunning(st.Phase) || st.Phase == PhasePromoting || st.CanaryWeight > 0 || !programmedZero
	if st.Phase != meshv1alpha1.RolloutFailed && canaryNeeded && in.Canary.Replicas == 0 {
		out = append(out, ScaleCanary{Up: true})
	}
	if st.Phase == PhasePromoting && e.copyWanted() {
		out = append(out, CopyTemplateToStable{Revision: st.CanaryRevision})
	}
	if in.ProgrammedWeight == nil || *in.ProgrammedWeight != st.CanaryWeight {
		out = append(out, SetWeight{Weight: st.CanaryWeight})
	}
	if (st.Phase == meshv1alpha1.RolloutPromoted || st.Phase == meshv1alpha1.RolloutRolledBack) &&
		!canaryNeeded && in.Canary.Replicas > 0 {
		out = append(out, ScaleCanary{Up: false})
	}
	return e.withEvents(out)
}

// copyWanted says whether the promotion has reached the copy of the template: the canary takes all
// the traffic, and the stable Deployment does not have the template yet.
func (e *engine) copyWanted() bool {
	st, in := &e.st, &e.in
	return st.StableRevision != st.CanaryRevision && st.CanaryWeight == 100 &&
		e.programmed(100) && in.Stable.Revision != st.CanaryRevision
}

func (e *engine) withEvents(out []Action) []Action {
	return append(out, e.events...)
}
