package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// A change of Accepted or Programmed is an Event, a Warning when it turned False; an unchanged
// condition is none.
func TestTrafficPolicyConditionChangesAreEvents(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	r := &TrafficPolicyStatusReconciler{Recorder: rec}
	tp := &meshv1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout", Generation: 1}}
	step := func(fb ObjectFeedback) {
		before := append([]metav1.Condition(nil), tp.Status.Conditions...)
		setPolicyConditions(&tp.Status.Status, 1, fb)
		r.recordChanges(tp, before)
	}
	step(ObjectFeedback{Published: true})
	step(ObjectFeedback{Published: true, NACK: "listener: bad"})
	step(ObjectFeedback{Published: true, NACK: "listener: bad"})
	step(ObjectFeedback{Published: true, NACK: "listener: bad", Problems: translate.Problems{{Field: "spec.targetRef", Message: "no Service"}}})

	want := []string{
		"Normal Accepted The policy is valid and applies to its Service.",
		"Normal Programmed The config is published to the proxies.",
		"Warning Rejected A proxy rejected the generated config: listener: bad",
	}
	for _, w := range want {
		select {
		case got := <-rec.Events:
			if got != w {
				t.Errorf("event %q, want %q", got, w)
			}
		default:
			t.Errorf("no event, want %q", w)
		}
	}
	select {
	case got := <-rec.Events:
		if got[:len("Warning")] != "Warning" {
			t.Errorf("Accepted turning False made %q, want a Warning", got)
		}
	default:
		t.Error("Accepted turning False made no event")
	}
	select {
	case got := <-rec.Events:
		t.Errorf("unexpected event %q", got)
	default:
	}
}
