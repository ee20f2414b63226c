package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// TrafficPolicyStatusReconciler writes a TrafficPolicy's conditions from the pipeline's Feedback:
// Accepted (the translation honoured it), Programmed (published, no proxy rejected it) and Ready
// (both). It runs on the leader only.
type TrafficPolicyStatusReconciler struct {
	Client   client.Client
	Feedback *Feedback
	// Recorder, when set, gets an Event each time Accepted or Programmed changes.
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=trafficpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile patches the status when the conditions changed.
func (r *TrafficPolicyStatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tp := &meshv1alpha1.TrafficPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, tp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	fb := r.Feedback.For(ir.ObjectRef{Kind: "TrafficPolicy", Namespace: tp.Namespace, Name: tp.Name})
	before := tp.DeepCopy()
	setPolicyConditions(&tp.Status.Status, tp.Generation, fb)
	if equalStatus(before.Status.Status, tp.Status.Status) {
		return ctrl.Result{}, nil
	}
	err := r.Client.Status().Patch(ctx, tp, client.MergeFrom(before))
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	if err == nil {
		r.recordChanges(tp, before.Status.Conditions)
	}
	return ctrl.Result{}, err
}

// recordChanges makes an Event of each change of Accepted or Programmed: a Warning when it turned
// False, so `kubectl get events` shows when and why a policy stopped applying.
func (r *TrafficPolicyStatusReconciler) recordChanges(tp *meshv1alpha1.TrafficPolicy, before []metav1.Condition) {
	if r.Recorder == nil {
		return
	}
	for _, typ := range []string{meshv1alpha1.ConditionAccepted, meshv1alpha1.ConditionProgrammed} {
		now, was := meta.FindStatusCondition(tp.Status.Conditions, typ), meta.FindStatusCondition(before, typ)
		if now == nil || now.Status == metav1.ConditionUnknown || (was != nil && was.Status == now.Status && was.Reason == now.Reason) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if now.Status == metav1.ConditionFalse {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(tp, nil, eventType, now.Reason, typ, "%s", now.Message)
	}
}

// setPolicyConditions derives the kstatus-style conditions of a policy from the pipeline's feedback.
func setPolicyConditions(st *meshv1alpha1.Status, generation int64, fb ObjectFeedback) {
	st.ObservedGeneration = generation
	accepted := metav1.Condition{Type: meshv1alpha1.ConditionAccepted, Status: metav1.ConditionTrue,
		Reason: "Accepted", Message: "The policy is valid and applies to its Service.", ObservedGeneration: generation}
	var errs, warnings translate.Problems
	for _, p := range fb.Problems {
		if p.Warning {
			warnings = append(warnings, p)
		} else {
			errs = append(errs, p)
		}
	}
	switch {
	case len(errs) > 0:
		accepted.Status = metav1.ConditionFalse
		accepted.Reason, accepted.Message = summary(fb.Problems)
	case len(warnings) > 0:
		// The policy applies; some clients (proxyless gRPC) cannot honour some fields, or a
		// subset has no endpoints yet. Accepted stays True and says so.
		reason, msg := summary(warnings)
		accepted.Reason, accepted.Message = reason, "The policy applies, with limits: "+msg
	}
	programmed := metav1.Condition{Type: meshv1alpha1.ConditionProgrammed, Status: metav1.ConditionUnknown,
		Reason: "Pending", Message: "Waiting for the xDS server to publish the policy.", ObservedGeneration: generation}
	switch {
	case fb.PublishError != "":
		programmed.Status, programmed.Reason = metav1.ConditionFalse, "Invalid"
		programmed.Message = "The generated config failed validation; proxies keep the last good config: " + fb.PublishError
	case fb.NACK != "":
		programmed.Status, programmed.Reason = metav1.ConditionFalse, "Rejected"
		programmed.Message = "A proxy rejected the generated config: " + fb.NACK
	case fb.Published:
		programmed.Status, programmed.Reason = metav1.ConditionTrue, "Programmed"
		programmed.Message = "The config is published to the proxies."
	}
	ready := metav1.Condition{Type: meshv1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: "NotReady", Message: "The policy is not fully in effect; see Accepted and Programmed.", ObservedGeneration: generation}
	if accepted.Status == metav1.ConditionTrue && programmed.Status == metav1.ConditionTrue {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, "Ready", "The policy is in effect."
		if len(warnings) > 0 {
			ready.Message = "The policy is in effect, with the limits Accepted names."
		}
	}
	for _, c := range []metav1.Condition{accepted, programmed, ready} {
		meta.SetStatusCondition(&st.Conditions, c)
	}
}

// equalStatus compares statuses ignoring condition transition times (SetStatusCondition keeps them
// when nothing changed).
func equalStatus(a, b meshv1alpha1.Status) bool {
	if a.ObservedGeneration != b.ObservedGeneration || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, ca := range a.Conditions {
		cb := meta.FindStatusCondition(b.Conditions, ca.Type)
		if cb == nil || cb.Status != ca.Status || cb.Reason != ca.Reason || cb.Message != ca.Message ||
			cb.ObservedGeneration != ca.ObservedGeneration {
			return false
		}
	}
	return true
}

// SetupWithManager wakes the reconciler for policy changes and for feedback from the pipeline.
func (r *TrafficPolicyStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("trafficpolicy-status").
		For(&meshv1alpha1.TrafficPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Feedback.Subscribe("TrafficPolicy"), &handler.EnqueueRequestForObject{})).
		Complete(r)
}
