package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
)

// trustBundleFieldOwner is the server-side apply field manager of trust bundle ConfigMaps.
const trustBundleFieldOwner = "sluice-trustbundle"

// trustBundleRequest is the one work item: a trust domain's roots come from every namespace.
var trustBundleRequest = reconcile.Request{NamespacedName: client.ObjectKey{Name: "trust-bundles"}}

// TrustBundleReconciler keeps the ConfigMap sluice-trust-bundle of every namespace with
// identities: the distinct CA certificates of the identity Secrets of the trust domains they use
// (zerotrust.TrustBundles), a root no Secret carries any more kept for Retention. Proxyless gRPC
// workloads mount it as their file_watcher's ca_certificate_file, so during a CA rotation they
// trust both roots. It runs on the leader only and reads only identity-labelled Secrets (the
// manager's cache holds no other).
type TrustBundleReconciler struct {
	Client            client.Client
	OperatorNamespace string
	// Retention is how long a root stays once no identity Secret carries it.
	Retention time.Duration
	// Clock defaults to the real clock.
	Clock clock.PassiveClock
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete

// Reconcile decides every bundle, applies the ones that changed, deletes the ones no namespace
// needs, and comes back when a retained root is due to leave.
func (r *TrustBundleReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	mc, err := readCoverage(ctx, r.Client, r.OperatorNamespace)
	if err != nil {
		return reconcile.Result{}, err
	}
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, client.MatchingLabels{zerotrust.LabelIdentity: "true"}); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing identity Secrets: %w", err)
	}
	var cms corev1.ConfigMapList
	if err := r.Client.List(ctx, &cms, trustBundleLabels); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing trust bundle ConfigMaps: %w", err)
	}
	in := zerotrust.TrustBundleInput{
		Identities: mc.Identities,
		Current:    map[string]zerotrust.TrustBundle{},
		Now:        r.Clock.Now(),
		Retention:  r.Retention,
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		in.Secrets = append(in.Secrets, zerotrust.IdentitySecret{Namespace: s.Namespace, Name: s.Name, CA: s.Data["ca.crt"]})
	}
	existing := map[string]*corev1.ConfigMap{}
	for i := range cms.Items {
		cm := &cms.Items[i]
		if cm.Name == zerotrust.TrustBundleName {
			existing[cm.Namespace] = cm
			in.Current[cm.Namespace] = zerotrust.TrustBundleOf(cm)
		}
	}
	bundles, next := zerotrust.TrustBundles(in)

	var errs []error
	for ns, b := range bundles {
		want := b.ConfigMap()
		if have := existing[ns]; have != nil && sameBundle(have, want) {
			continue
		}
		apply := corev1ac.ConfigMap(want.Name, want.Namespace).WithLabels(want.Labels).WithAnnotations(want.Annotations).WithData(want.Data)
		if err := r.Client.Apply(ctx, apply, client.FieldOwner(trustBundleFieldOwner), client.ForceOwnership); err != nil {
			errs = append(errs, fmt.Errorf("applying ConfigMap %s/%s: %w", ns, want.Name, err))
		}
	}
	for ns, have := range existing {
		if _, ok := bundles[ns]; ok {
			continue
		}
		if err := r.Client.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting ConfigMap %s/%s: %w", ns, have.Name, err))
		}
	}
	res := reconcile.Result{}
	if !next.IsZero() {
		res.RequeueAfter = max(next.Sub(in.Now), time.Millisecond)
	}
	return res, errors.Join(errs...)
}

// sameBundle says whether the ConfigMap already holds what want sets.
func sameBundle(have, want *corev1.ConfigMap) bool {
	for k, v := range want.Labels {
		if have.Labels[k] != v {
			return false
		}
	}
	return maps.Equal(have.Data, want.Data) &&
		have.Annotations[zerotrust.AnnotationRetainedUntil] == want.Annotations[zerotrust.AnnotationRetainedUntil]
}

// SetupWithManager watches what the bundles derive from: ZeroTrusts and pods (which identities
// are in use), identity Secrets, and the bundles themselves (an edit is undone).
func (r *TrustBundleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Retention <= 0 {
		r.Retention = zerotrust.DefaultTrustBundleRetention
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{trustBundleRequest}
	})
	labelled := func(key, value string) predicate.Predicate {
		return predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[key] == value })
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("trustbundle").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&meshv1alpha1.ZeroTrust{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, all, builder.WithPredicates(podCoverageChanged())).
		Watches(&corev1.Secret{}, all, builder.WithPredicates(labelled(zerotrust.LabelIdentity, "true"))).
		Watches(&corev1.ConfigMap{}, all, builder.WithPredicates(trustBundle)).
		Complete(r)
}
