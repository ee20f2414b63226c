package rollout

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The State lives in the Rollout's status and nowhere else, so an operator restart resumes where
// the last status write left off. These two functions are the only translation between them.

// StateFromStatus reads the engine State out of a Rollout's status.
func StateFromStatus(st *meshv1alpha1.RolloutStatus) State {
	s := State{
		Phase:              st.Phase,
		Message:            st.Message,
		StableRevision:     st.StableRevision,
		CanaryRevision:     st.CanaryRevision,
		CanaryWeight:       st.CanaryWeight,
		StepsHash:          st.StepsHash,
		RunStartedAt:       st.RunStartedAt.DeepCopy(),
		StepStartedAt:      st.StepStartedAt.DeepCopy(),
		WeightProgrammedAt: st.WeightProgrammedAt.DeepCopy(),
		PausedByUser:       st.PausedByUser,
		AbortReason:        st.AbortReason,
		FailureReason:      st.FailureReason,
	}
	if st.CurrentStepIndex != nil {
		s.CurrentStepIndex = *st.CurrentStepIndex
	}
	for _, h := range st.HandledRequests {
		s.HandledRequests = append(s.HandledRequests, HandledRequest{Kind: RequestKind(h.Kind), ID: h.ID})
	}
	if a := st.Analysis; a != nil {
		s.Analysis = AnalysisState{
			NextCheckAt:        a.NextCheckAt.DeepCopy(),
			LastCheckAt:        a.LastCheckAt.DeepCopy(),
			LastVerdict:        Verdict(a.LastVerdict),
			PassedChecks:       a.PassedChecks,
			FailedChecks:       a.FailedChecks,
			InconclusiveChecks: a.InconclusiveChecks,
			ConsecutiveErrors:  a.ConsecutiveErrors,
		}
		for _, m := range a.Metrics {
			ev := MetricEvidence{Name: m.Name, Query: m.Query, Threshold: m.Threshold}
			for _, r := range m.Results {
				ev.Results = append(ev.Results, MetricEvidenceResult{
					Time: r.Time, Verdict: Verdict(r.Verdict), Reason: InconclusiveReason(r.Reason),
					Value: r.Value, Requests: copyInt64(r.Requests), Error: r.Error,
				})
			}
			s.Analysis.Metrics = append(s.Analysis.Metrics, ev)
		}
	}
	return s
}

// WriteStatus writes the State into a Rollout's status, leaving its conditions and
// observedGeneration alone.
func (s *State) WriteStatus(st *meshv1alpha1.RolloutStatus) {
	step := s.CurrentStepIndex
	st.Phase = s.Phase
	st.Message = s.Message
	st.StableRevision = s.StableRevision
	st.CanaryRevision = s.CanaryRevision
	st.CanaryWeight = s.CanaryWeight
	st.CurrentStepIndex = &step
	st.StepsHash = s.StepsHash
	st.RunStartedAt = s.RunStartedAt.DeepCopy()
	st.StepStartedAt = s.StepStartedAt.DeepCopy()
	st.WeightProgrammedAt = s.WeightProgrammedAt.DeepCopy()
	st.PausedByUser = s.PausedByUser
	st.AbortReason = s.AbortReason
	st.FailureReason = s.FailureReason
	st.HandledRequests = nil
	for _, h := range s.HandledRequests {
		st.HandledRequests = append(st.HandledRequests, meshv1alpha1.HandledRequest{Kind: string(h.Kind), ID: h.ID})
	}
	st.Analysis = nil
	if a := s.Analysis; !a.isZero() {
		out := &meshv1alpha1.RolloutAnalysisStatus{
			NextCheckAt:        a.NextCheckAt.DeepCopy(),
			LastCheckAt:        a.LastCheckAt.DeepCopy(),
			LastVerdict:        string(a.LastVerdict),
			PassedChecks:       a.PassedChecks,
			FailedChecks:       a.FailedChecks,
			InconclusiveChecks: a.InconclusiveChecks,
			ConsecutiveErrors:  a.ConsecutiveErrors,
		}
		for _, m := range a.Metrics {
			ev := meshv1alpha1.MetricEvidence{Name: m.Name, Query: m.Query, Threshold: m.Threshold}
			for _, r := range m.Results {
				ev.Results = append(ev.Results, meshv1alpha1.MetricEvidenceResult{
					Time: r.Time, Verdict: string(r.Verdict), Reason: string(r.Reason),
					Value: r.Value, Requests: copyInt64(r.Requests), Error: r.Error,
				})
			}
			out.Metrics = append(out.Metrics, ev)
		}
		st.Analysis = out
	}
}

func (a *AnalysisState) isZero() bool {
	return a.NextCheckAt == nil && a.LastCheckAt == nil && a.LastVerdict == "" && a.PassedChecks == 0 &&
		a.FailedChecks == 0 && a.InconclusiveChecks == 0 && a.ConsecutiveErrors == 0 && len(a.Metrics) == 0
}
