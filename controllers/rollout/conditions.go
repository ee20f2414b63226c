package rollout

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The Rollout's own condition types, beside Ready, Reconciling and Stalled. Each is always present,
// so `kubectl wait --for=condition=Promoted` (or Aborted) works.
const (
	// ConditionPromoted is True when the latest revision is stable and serves all the traffic.
	ConditionPromoted = "Promoted"
	// ConditionProgressing is True while a canary run or a promotion is moving on by itself.
	ConditionProgressing = "Progressing"
	// ConditionPaused is True while the rollout waits for a person: a pause step without a
	// duration (reason PauseStep) or a pause request (reason PausedByUser).
	ConditionPaused = "Paused"
	// ConditionAborted is True after a run was aborted; the reason says why (AnalysisFailed,
	// AnalysisErrors, AbortedByUser).
	ConditionAborted = "Aborted"
)

// conditions derives the Rollout's conditions from the State. Ready follows kstatus: True when the
// rollout is idle with the latest revision promoted. Reconciling and Stalled are listed only while
// True (SetConditions removes them otherwise).
func conditions(st *State, generation int64, now time.Time) []metav1.Condition {
	cond := func(t string, ok bool, reason, message string) metav1.Condition {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: status, Reason: reason, Message: message,
			ObservedGeneration: generation, LastTransitionTime: metav1.Time{Time: now.Round(0).UTC()}}
	}
	phase, msg := st.Phase, st.Message
	reason := phaseReason(st)
	promoted := phase == meshv1alpha1.RolloutPromoted
	paused := phase == meshv1alpha1.RolloutPaused || (st.PausedByUser && phase != meshv1alpha1.RolloutFailed)
	pausedReason := "NotPaused"
	switch {
	case st.PausedByUser:
		pausedReason = "PausedByUser"
	case phase == meshv1alpha1.RolloutPaused:
		pausedReason = "PauseStep"
	}
	aborted := phase == meshv1alpha1.RolloutRolledBack
	abortReason := "NotAborted"
	if aborted {
		abortReason = reason
	}
	progressing := phase == meshv1alpha1.RolloutProgressing || phase == PhasePromoting
	out := []metav1.Condition{
		cond(meshv1alpha1.ConditionReady, promoted, reason, msg),
		cond(ConditionPromoted, promoted, reason, msg),
		cond(ConditionProgressing, progressing, reason, msg),
		cond(ConditionPaused, paused, pausedReason, msg),
		cond(ConditionAborted, aborted, abortReason, msg),
	}
	switch phase {
	case meshv1alpha1.RolloutRolledBack, meshv1alpha1.RolloutFailed:
		out = append(out, cond(meshv1alpha1.ConditionStalled, true, reason, msg))
	case meshv1alpha1.RolloutPromoted:
	default:
		out = append(out, cond(meshv1alpha1.ConditionReconciling, true, reason, msg))
	}
	return out
}

// phaseReason is the CamelCase reason of the State's phase.
func phaseReason(st *State) string {
	switch st.Phase {
	case meshv1alpha1.RolloutRolledBack:
		if st.AbortReason != "" {
			return st.AbortReason
		}
	case meshv1alpha1.RolloutFailed:
		if st.FailureReason != "" {
			return st.FailureReason
		}
	case "":
		return string(meshv1alpha1.RolloutPending)
	}
	return string(st.Phase)
}

// SetConditions puts the Decision's conditions into a status' conditions: each is set with
// meta.SetStatusCondition (an unchanged status keeps its lastTransitionTime), and Reconciling and
// Stalled are removed when the Decision does not list them.
func SetConditions(conditions *[]metav1.Condition, d Decision) {
	for _, t := range []string{meshv1alpha1.ConditionReconciling, meshv1alpha1.ConditionStalled} {
		if meta.FindStatusCondition(d.Conditions, t) == nil {
			meta.RemoveStatusCondition(conditions, t)
		}
	}
	for _, c := range d.Conditions {
		meta.SetStatusCondition(conditions, c)
	}
}
