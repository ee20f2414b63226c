package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/rollout"
	"github.com/sluice-mesh/sluice/internal/promquery"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// AnalysisRunner runs one analysis check: every metric of a Rollout's analysis, queried once.
type AnalysisRunner interface {
	Run(ctx context.Context, a *meshv1alpha1.Analysis, vars promquery.Vars, now time.Time) rollout.Check
}

// RoutesProgrammed tells whether the proxies apply the published content of route
// configurations; in the manager it is this replica's xDS server.
type RoutesProgrammed interface {
	RoutesProgrammed(names []string) bool
}

// programmedPoll is how often a Rollout waiting for the proxies to apply a weight looks again: a
// proxy's ACK is not a Kubernetes event that could wake it.
const programmedPoll = 250 * time.Millisecond

// RolloutReconciler is the glue around the pure engine (rollout.Step): it observes the two
// Deployments and what the proxies apply, runs the analysis when it is due, carries out the
// engine's actions and writes the engine's State to the status in one patch. It runs on the
// leader only; the State lives in the status, so a new leader resumes where the last one was.
type RolloutReconciler struct {
	Client   client.Client
	Feedback *Feedback
	Proxies  RoutesProgrammed
	Analysis AnalysisRunner
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Metrics, when set, are the sluice_rollout_* gauges.
	Metrics *RolloutMetrics
}

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts,verbs=get;list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// The primary Deployment is owned by its Rollout with blockOwnerDeletion; clusters that enforce
// owner references (OwnerReferencesPermissionEnforcement, e.g. OpenShift) require this to set it.
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes one engine Step for a Rollout.
func (r *RolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ro := &meshv1alpha1.Rollout{}
	if err := r.Client.Get(ctx, req.NamespacedName, ro); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	canary, err := observeDeployment(ctx, r.Client, ro.Namespace, ro.Spec.TargetRef.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	stable, err := observeDeployment(ctx, r.Client, ro.Namespace, primaryName(ro))
	if err != nil {
		return ctrl.Result{}, err
	}
	if !canary.revisionKnown || !stable.revisionKnown {
		// The Deployment controller has not made the ReplicaSet of a new template yet; its
		// creation wakes this Rollout.
		return ctrl.Result{}, nil
	}

	now := r.Clock.Now()
	state := rollout.StateFromStatus(&ro.Status)
	in := rollout.Input{
		Now:              now,
		Generation:       ro.Generation,
		Spec:             ro.Spec,
		State:            state,
		Canary:           canary.workload,
		Stable:           stable.workload,
		ProgrammedWeight: r.programmedWeight(ro),
		Requests:         rollout.RequestsFromAnnotations(ro.Annotations),
	}
	if ro.Spec.Analysis != nil && state.AnalysisDue(now) {
		in.Checks = []rollout.Check{r.Analysis.Run(ctx, ro.Spec.Analysis, analysisVars(ro, &state), now)}
	}
	d := rollout.Step(in)

	// Carry the actions out in order; each is a level, so a failure part way is repeated on the
	// next Step. The status is written whatever happened, with the events recorded so far.
	actErr := r.act(ctx, ro, d.Actions, canary.deploy, stable.deploy)

	before := ro.DeepCopy()
	d.State.WriteStatus(&ro.Status)
	rollout.SetConditions(&ro.Status.Conditions, d)
	setTranslationCondition(ro, r.Feedback.For(rolloutRef(ro)))
	ro.Status.ObservedGeneration = ro.Generation
	if !apiequality.Semantic.DeepEqual(before.Status, ro.Status) {
		if err := r.Client.Status().Patch(ctx, ro, client.MergeFrom(before)); err != nil {
			if apierrors.IsNotFound(err) {
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, fmt.Errorf("writing the Rollout's status: %w", err)
		}
	}
	r.Metrics.observe(ro)
	if actErr != nil {
		return ctrl.Result{}, actErr
	}
	return ctrl.Result{RequeueAfter: r.requeueAfter(d, in.ProgrammedWeight)}, nil
}

// requeueAfter is the engine's wish, sooner while a weight waits for the proxies.
func (r *RolloutReconciler) requeueAfter(d rollout.Decision, programmed *int32) time.Duration {
	after := d.RequeueAfter
	if programmed == nil || *programmed != d.State.CanaryWeight {
		if after == 0 || after > programmedPoll {
			after = programmedPoll
		}
	}
	return after
}

// programmedWeight is the canary weight the proxies apply: the weight of the last published
// split of this Rollout, once every proxy connected to this replica that uses its routes has ACKed
// them; nil while unknown (not published yet, a proxy behind, or no route carries the split).
func (r *RolloutReconciler) programmedWeight(ro *meshv1alpha1.Rollout) *int32 {
	split := r.Feedback.For(rolloutRef(ro)).Split
	if split == nil || len(split.Routes) == 0 {
		return nil
	}
	// A split of other revisions is not the one the status asks about.
	if split.CanaryRevision != ro.Status.CanaryRevision || split.StableRevision != ro.Status.StableRevision {
		return nil
	}
	if !r.Proxies.RoutesProgrammed(split.Routes) {
		return nil
	}
	w := split.CanaryWeight
	return &w
}

// act carries out the engine's actions.
func (r *RolloutReconciler) act(ctx context.Context, ro *meshv1alpha1.Rollout, actions []rollout.Action, canary, stable *appsv1.Deployment) error {
	for _, a := range actions {
		var err error
		switch a := a.(type) {
		case rollout.SetWeight:
			// The weight is in the status this reconcile writes; the mesh reconciler routes by it.
		case rollout.ScaleCanary:
			if canary != nil {
				err = scaleCanary(ctx, r.Client, canary, a.Up, stable)
			}
		case rollout.CopyTemplateToStable:
			if canary != nil {
				err = copyTemplateToStable(ctx, r.Client, ro, canary, stable)
			}
		case rollout.Event:
			r.Recorder.Eventf(ro, nil, a.Type, a.Reason, "Rollout", "%s", a.Message)
		}
		if err != nil {
			return fmt.Errorf("%T: %w", a, err)
		}
	}
	return nil
}

// analysisVars are the variables of the Rollout's queries.
func analysisVars(ro *meshv1alpha1.Rollout, st *rollout.State) promquery.Vars {
	return promquery.Vars{
		Namespace:      ro.Namespace,
		Name:           ro.Name,
		Service:        ro.Spec.Service.Name,
		Workload:       ro.Spec.TargetRef.Name,
		CanaryRevision: st.CanaryRevision,
		StableRevision: st.StableRevision,
	}
}

func rolloutRef(ro *meshv1alpha1.Rollout) ir.ObjectRef {
	return ir.ObjectRef{Kind: "Rollout", Namespace: ro.Namespace, Name: ro.Name}
}

// setTranslationCondition reports, as Accepted, whether the mesh could route by the Rollout: a
// missing Service or port, a TCP port or a conflict with an older Rollout stop its weights from
// taking effect, which the engine alone cannot see.
func setTranslationCondition(ro *meshv1alpha1.Rollout, fb ObjectFeedback) {
	c := metav1.Condition{Type: meshv1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: "Accepted",
		Message: "The mesh routes the Service's traffic by this Rollout.", ObservedGeneration: ro.Generation}
	if len(fb.Problems) > 0 {
		c.Status = metav1.ConditionFalse
		c.Reason, c.Message = summary(fb.Problems)
	}
	meta.SetStatusCondition(&ro.Status.Conditions, c)
}

// SetupWithManager watches Rollouts, both of their Deployments, the ReplicaSets that reveal a new
// revision, and the pipeline's feedback (a published split).
func (r *RolloutReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &meshv1alpha1.Rollout{}, rolloutTargetIndex,
		func(o client.Object) []string { return []string{o.(*meshv1alpha1.Rollout).Spec.TargetRef.Name} }); err != nil {
		return err
	}
	byTarget := handler.EnqueueRequestsFromMapFunc(r.rolloutsForDeployment)
	return ctrl.NewControllerManagedBy(mgr).
		Named("rollout").
		For(&meshv1alpha1.Rollout{}).
		Owns(&appsv1.Deployment{}).
		Watches(&appsv1.Deployment{}, byTarget).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsForReplicaSet)).
		WatchesRawSource(source.Channel(r.Feedback.Subscribe("Rollout"), &handler.EnqueueRequestForObject{})).
		Complete(r)
}

const rolloutTargetIndex = "spec.targetRef.name"

func (r *RolloutReconciler) rolloutsForDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	var list meshv1alpha1.RolloutList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{rolloutTargetIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ro := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
	}
	return out
}

// rolloutsForReplicaSet maps a ReplicaSet to the Rollouts of the Deployment that owns it: the
// user's Deployment, or a <target>-primary.
func (r *RolloutReconciler) rolloutsForReplicaSet(ctx context.Context, o client.Object) []reconcile.Request {
	owner := metav1.GetControllerOf(o)
	if owner == nil || owner.Kind != "Deployment" {
		return nil
	}
	target := &metav1.PartialObjectMetadata{}
	target.SetNamespace(o.GetNamespace())
	target.SetName(strings.TrimSuffix(owner.Name, PrimarySuffix))
	out := r.rolloutsForDeployment(ctx, target)
	if target.GetName() != owner.Name {
		target.SetName(owner.Name)
		out = append(out, r.rolloutsForDeployment(ctx, target)...)
	}
	return out
}
