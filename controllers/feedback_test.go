package controllers

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/translate"
)

var policy = ir.ObjectRef{Kind: "TrafficPolicy", Namespace: "shop", Name: "checkout"}

// A NACK holds while the config it was about is what proxies have, and clears when that config
// changes and is published.
func TestNACKHoldsUntilTheConfigChanges(t *testing.T) {
	f := NewFeedback()
	events := f.Subscribe("TrafficPolicy")

	f.Translated(nil, map[ir.ObjectRef]uint64{policy: 1}, nil, nil, nil)
	if fb := f.For(policy); !fb.Published || fb.NACK != "" {
		t.Fatalf("after a publish: %+v", fb)
	}
	f.NACKed("route rejected", []ir.ObjectRef{policy})
	f.Translated(nil, map[ir.ObjectRef]uint64{policy: 1}, nil, nil, nil) // an unrelated change
	if fb := f.For(policy); fb.NACK != "route rejected" {
		t.Fatalf("an unrelated publish cleared the NACK: %+v", fb)
	}
	f.Translated(nil, map[ir.ObjectRef]uint64{policy: 1}, nil, errors.New("invalid"), nil)
	if fb := f.For(policy); fb.NACK != "route rejected" || fb.PublishError == "" {
		t.Fatalf("a refused snapshot should keep the NACK and add the error: %+v", fb)
	}
	f.Translated(nil, map[ir.ObjectRef]uint64{policy: 2}, nil, nil, nil)
	if fb := f.For(policy); fb.NACK != "" || !fb.Published {
		t.Fatalf("new config for the policy should clear the NACK: %+v", fb)
	}
	if len(events) == 0 {
		t.Error("no wake-up was sent to the TrafficPolicy status reconciler")
	}
}

func TestPolicyConditions(t *testing.T) {
	problem := translate.Problem{Object: policy, Reason: "Conflicted", Field: "spec.targetRef", Message: "older policy wins"}
	limit := translate.Problem{Object: policy, Reason: "UnsupportedByGRPC", Field: "spec.mirror", Message: "gRPC clients do not mirror", Warning: true}
	cases := []struct {
		name                    string
		fb                      ObjectFeedback
		accepted, programmed    metav1.ConditionStatus
		programmedReason, ready string
	}{
		{"fresh", ObjectFeedback{}, metav1.ConditionTrue, metav1.ConditionUnknown, "Pending", "False"},
		{"published", ObjectFeedback{Published: true}, metav1.ConditionTrue, metav1.ConditionTrue, "Programmed", "True"},
		{"problem", ObjectFeedback{Published: true, Problems: translate.Problems{problem}}, metav1.ConditionFalse, metav1.ConditionTrue, "Programmed", "False"},
		{"limited", ObjectFeedback{Published: true, Problems: translate.Problems{limit}}, metav1.ConditionTrue, metav1.ConditionTrue, "Programmed", "True"},
		{"invalid", ObjectFeedback{PublishError: "bad"}, metav1.ConditionTrue, metav1.ConditionFalse, "Invalid", "False"},
		{"nacked", ObjectFeedback{Published: true, NACK: "no"}, metav1.ConditionTrue, metav1.ConditionFalse, "Rejected", "False"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st meshv1alpha1.Status
			setPolicyConditions(&st, 3, tc.fb)
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
			a := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionAccepted)
			p := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionProgrammed)
			r := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady)
			if a.Status != tc.accepted || p.Status != tc.programmed || p.Reason != tc.programmedReason || string(r.Status) != tc.ready {
				t.Errorf("Accepted=%s Programmed=%s/%s Ready=%s", a.Status, p.Status, p.Reason, r.Status)
			}
			if tc.name == "problem" && a.Message != "spec.targetRef: older policy wins" {
				t.Errorf("Accepted message %q", a.Message)
			}
			if tc.name == "limited" && (a.Reason != "UnsupportedByGRPC" || !strings.Contains(a.Message, "spec.mirror: gRPC clients do not mirror")) {
				t.Errorf("Accepted %s: %q", a.Reason, a.Message)
			}
		})
	}
}

func TestContainsWord(t *testing.T) {
	for _, tc := range []struct {
		s, word string
		want    bool
	}{
		{`route "a.shop.svc.cluster.local:80" rejected`, "a.shop.svc.cluster.local:80", true},
		{`route a.shop.svc.cluster.local:8080 rejected`, "a.shop.svc.cluster.local:80", false},
		{`missing b.a.shop.svc.cluster.local:80.`, "a.shop.svc.cluster.local:80", false},
		{`cluster outbound|80||a.shop.svc.cluster.local.`, "outbound|80||a.shop.svc.cluster.local", true},
	} {
		if got := containsWord(tc.s, tc.word); got != tc.want {
			t.Errorf("containsWord(%q, %q) = %v", tc.s, tc.word, got)
		}
	}
}
