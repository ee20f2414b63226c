package rollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestConditions(t *testing.T) {
	const T, F, absent = metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionStatus("")
	type row struct {
		ready, promoted, progressing, paused, aborted, reconciling, stalled metav1.ConditionStatus
		reason                                                              string // Ready's
	}
	for _, tc := range []struct {
		name string
		st   State
		want row
	}{
		{"pending", State{Phase: pending}, row{F, F, F, F, F, T, absent, "Pending"}},
		{"progressing", State{Phase: progressing}, row{F, F, T, F, F, T, absent, "Progressing"}},
		{"pause step", State{Phase: paused}, row{F, F, F, T, F, T, absent, "Paused"}},
		{"paused by user", State{Phase: paused, PausedByUser: true}, row{F, F, F, T, F, T, absent, "Paused"}},
		{"promoting", State{Phase: promoting}, row{F, F, T, F, F, T, absent, "Promoting"}},
		{"promoted", State{Phase: promoted}, row{T, T, F, F, F, absent, absent, "Promoted"}},
		{"promoted, holding the next revision", State{Phase: promoted, PausedByUser: true}, row{T, T, F, T, F, absent, absent, "Promoted"}},
		{"rolled back", State{Phase: rolledBack, AbortReason: "AnalysisFailed"}, row{F, F, F, F, T, absent, T, "AnalysisFailed"}},
		{"failed", State{Phase: failed, FailureReason: "InvalidSpec"}, row{F, F, F, F, F, absent, T, "InvalidSpec"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conds := conditions(&tc.st, 7, t0)
			status := func(typ string) metav1.ConditionStatus {
				for _, c := range conds {
					if c.Type == typ {
						if c.ObservedGeneration != 7 || c.Reason == "" {
							t.Errorf("%s: %+v", typ, c)
						}
						return c.Status
					}
				}
				return absent
			}
			got := row{status(meshv1alpha1.ConditionReady), status(ConditionPromoted), status(ConditionProgressing),
				status(ConditionPaused), status(ConditionAborted), status(meshv1alpha1.ConditionReconciling),
				status(meshv1alpha1.ConditionStalled), conds[0].Reason}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSetConditions(t *testing.T) {
	var conds []metav1.Condition
	SetConditions(&conds, Decision{Conditions: conditions(&State{Phase: progressing}, 1, t0)})
	if len(conds) != 6 {
		t.Fatalf("%d conditions", len(conds))
	}
	SetConditions(&conds, Decision{Conditions: conditions(&State{Phase: promoted}, 2, t0.Add(time.Minute))})
	if len(conds) != 5 {
		t.Errorf("Reconciling stayed: %+v", conds)
	}
	for _, c := range conds {
		if c.Type == ConditionPaused && !c.LastTransitionTime.Equal(&metav1.Time{Time: t0}) {
			t.Errorf("an unchanged condition moved its transition time: %+v", c)
		}
	}
}
