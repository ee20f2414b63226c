package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/resources"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// Publisher receives each translated snapshot; in the manager it is the xDS server.
type Publisher interface {
	// Publish serves snap to the proxies, or refuses it (keeping the last good one) with an error
	// that names the offending resources. trigger is when the change that led to it happened.
	Publish(snap *envoy.Snapshot, trigger time.Time) error
	// ObserveTranslation records how long a translation took.
	ObserveTranslation(d time.Duration)
}

// DefaultDebounce is how long the mesh reconciler waits after a change for more changes, so a burst
// (a Deployment rolling its pods) becomes one push. The first change of a burst is never delayed
// longer than this.
const DefaultDebounce = 100 * time.Millisecond

// MeshReconciler turns the whole cluster into one xDS snapshot: gather from the informer cache,
// translate (pure), publish. It runs on every replica, because every replica serves xDS; it writes
// no status (the status reconcilers do, on the leader, from Feedback).
type MeshReconciler struct {
	Reader       client.Reader
	Publisher    Publisher
	Feedback     *Feedback
	EnvoyOptions envoy.Options
	Clock        clock.PassiveClock
	Debounce     time.Duration
	// OperatorNamespace is the operator's own namespace, where a ZeroTrust covers the whole mesh.
	OperatorNamespace string

	// translator is built from EnvoyOptions on first use; it reuses the xDS messages of the Service
	// ports that did not change, so Publish can tell them apart by pointer. translateMu guards it.
	translateMu sync.Mutex
	translator  *envoy.Translator

	mu sync.Mutex
	// pendingSince is when the oldest change not yet translated happened.
	pendingSince time.Time
	// sourcesByName maps each published resource name to the objects that shaped it, for NACKs.
	sourcesByName map[string][]ir.ObjectRef
}

// meshRequest is the one work item: the reconciler always translates everything.
var meshRequest = reconcile.Request{NamespacedName: client.ObjectKey{Name: "mesh"}}

// +kubebuilder:rbac:groups="",resources=services;pods,verbs=get;list;watch
// The manager's cache lists and watches only the Secrets labelled mesh.sluice.dev/identity (RBAC
// cannot say so): the workload certificates served over SDS.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// Trust bundle ConfigMaps (the cache holds only the labelled ones Sluice writes).
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts;trafficpolicies;zerotrusts,verbs=get;list;watch

// Reconcile translates the cluster and publishes the result.
func (r *MeshReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	trigger := r.takeTrigger()
	res, err := r.gather(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}

	start := r.Clock.Now()
	tree, problems := translate.Translate(res)
	snap, err := r.translate(tree)
	r.Publisher.ObserveTranslation(r.Clock.Since(start))
	index := sourceIndex(tree)
	sources := index.hashes(snap, allSources(tree, problems))
	if err != nil {
		r.Feedback.Translated(problems, sources, nil, fmt.Errorf("translating to xDS: %w", err), nil)
		return reconcile.Result{}, nil
	}

	publishErr := r.Publisher.Publish(snap, trigger)
	r.Feedback.Translated(problems, sources, rolloutSplits(res.Rollouts, index, snap), publishErr, index.namedIn(publishErr))
	if publishErr == nil {
		r.mu.Lock()
		r.sourcesByName = index
		r.mu.Unlock()
	}
	ctrl.LoggerFrom(ctx).V(1).Info("published", "services", len(tree.Services), "problems", len(problems), "error", publishErr)
	return reconcile.Result{}, nil
}

// translate is envoy.Translate with the reconciler's Translator.
func (r *MeshReconciler) translate(tree *ir.IR) (*envoy.Snapshot, error) {
	r.translateMu.Lock()
	defer r.translateMu.Unlock()
	if r.translator == nil {
		r.translator = envoy.NewTranslator(r.EnvoyOptions)
	} else {
		r.translator.SetOptions(r.EnvoyOptions)
	}
	return r.translator.Translate(tree)
}

// NACKed maps the resources a proxy rejected to the objects that shaped them and records it.
func (r *MeshReconciler) NACKed(message string, resourceNames []string) {
	r.mu.Lock()
	seen := map[ir.ObjectRef]bool{}
	var refs []ir.ObjectRef
	for _, name := range resourceNames {
		for _, ref := range r.sourcesByName[name] {
			if !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
		}
	}
	r.mu.Unlock()
	r.Feedback.NACKed(message, refs)
}

func (r *MeshReconciler) gather(ctx context.Context) (*resources.Resources, error) {
	res := &resources.Resources{OperatorNamespace: r.OperatorNamespace}
	var (
		services corev1.ServiceList
		slices   discoveryv1.EndpointSliceList
		tps      meshv1alpha1.TrafficPolicyList
		ros      meshv1alpha1.RolloutList
		zts      meshv1alpha1.ZeroTrustList
	)
	// The translation needs pods' labels, owners and service accounts (their SPIFFE identities).
	// Pods are the largest objects an operator could cache, so the manager's cache keeps them slim:
	// metadata and spec.serviceAccountName only (internal/manager's cache options).
	var pods corev1.PodList
	for _, list := range []client.ObjectList{&services, &slices, &tps, &ros, &zts, &pods} {
		if err := r.Reader.List(ctx, list); err != nil {
			return nil, fmt.Errorf("listing %T: %w", list, err)
		}
	}
	// Only identity Secrets: the manager's cache holds no other (and only their TLS keys).
	var secrets corev1.SecretList
	if err := r.Reader.List(ctx, &secrets, client.MatchingLabels{zerotrust.LabelIdentity: "true"}); err != nil {
		return nil, fmt.Errorf("listing identity Secrets: %w", err)
	}
	for i := range secrets.Items {
		res.Secrets = append(res.Secrets, &secrets.Items[i])
	}
	// The trust bundles the leader keeps: Envoy's bundles keep the roots they retain.
	var bundles corev1.ConfigMapList
	if err := r.Reader.List(ctx, &bundles, trustBundleLabels); err != nil {
		return nil, fmt.Errorf("listing trust bundle ConfigMaps: %w", err)
	}
	for i := range bundles.Items {
		res.TrustBundles = append(res.TrustBundles, &bundles.Items[i])
	}
	for i := range services.Items {
		res.Services = append(res.Services, &services.Items[i])
	}
	for i := range slices.Items {
		res.EndpointSlices = append(res.EndpointSlices, &slices.Items[i])
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		res.Pods = append(res.Pods, &corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName}})
	}
	for i := range tps.Items {
		res.TrafficPolicies = append(res.TrafficPolicies, &tps.Items[i])
	}
	for i := range ros.Items {
		res.Rollouts = append(res.Rollouts, &ros.Items[i])
	}
	for i := range zts.Items {
		res.ZeroTrusts = append(res.ZeroTrusts, &zts.Items[i])
	}
	return res, nil
}

// noteChange records a change that the next reconcile must translate.
func (r *MeshReconciler) noteChange() {
	r.mu.Lock()
	if r.pendingSince.IsZero() {
		r.pendingSince = r.Clock.Now()
	}
	r.mu.Unlock()
}

func (r *MeshReconciler) takeTrigger() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.pendingSince
	if t.IsZero() {
		t = r.Clock.Now()
	}
	r.pendingSince = time.Time{}
	return t
}

// SetupWithManager watches every input of the translation. The controller does not need the
// leader lease: every replica serves xDS.
func (r *MeshReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Debounce <= 0 {
		r.Debounce = DefaultDebounce
	}
	trigger := &changeHandler{note: r.noteChange, delay: r.Debounce}
	return ctrl.NewControllerManagedBy(mgr).
		Named("mesh").
		WithOptions(controller.Options{NeedLeaderElection: ptrFalse(), MaxConcurrentReconciles: 1}).
		Watches(&corev1.Service{}, trigger).
		Watches(&discoveryv1.EndpointSlice{}, trigger).
		// A pod's service account cannot change, so only label changes matter after its creation.
		Watches(&corev1.Pod{}, trigger, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&meshv1alpha1.TrafficPolicy{}, trigger, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&meshv1alpha1.Rollout{}, trigger).
		Watches(&meshv1alpha1.ZeroTrust{}, trigger, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Identity Secrets only (the cache selects them by label): a renewal is pushed over SDS.
		Watches(&corev1.Secret{}, trigger, builder.WithPredicates(identitySecret)).
		// The leader's trust bundles: a retained root leaves Envoy's bundle when it leaves them.
		Watches(&corev1.ConfigMap{}, trigger, builder.WithPredicates(trustBundle)).
		Complete(r)
}

func ptrFalse() *bool { f := false; return &f }

// identitySecret passes the events of workload identity Secrets.
var identitySecret = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[zerotrust.LabelIdentity] == "true"
})

// trustBundleLabels select the trust bundle ConfigMaps the leader writes.
var trustBundleLabels = client.MatchingLabels{zerotrust.LabelComponent: zerotrust.ComponentTrustBundle, zerotrust.LabelManagedBy: zerotrust.ManagedBy}

// trustBundle passes the events of trust bundle ConfigMaps.
var trustBundle = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[zerotrust.LabelComponent] == zerotrust.ComponentTrustBundle
})

// allSources lists every object the translation used or reported on.
func allSources(tree *ir.IR, problems translate.Problems) []ir.ObjectRef {
	seen := map[ir.ObjectRef]bool{}
	var out []ir.ObjectRef
	add := func(ref ir.ObjectRef) {
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	for _, svc := range tree.Services {
		for _, p := range svc.Ports {
			for _, ref := range p.Sources {
				add(ref)
			}
		}
	}
	for _, p := range problems {
		add(p.Object)
	}
	return out
}
