package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/proxyreport"
)

// The cert-manager issuer kinds an issuerRef names, looked up as metadata only.
var (
	issuerGVK        = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Issuer"}
	clusterIssuerGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "ClusterIssuer"}
)

// zeroTrustFieldOwner is the server-side apply field manager of identity Certificates.
const zeroTrustFieldOwner = "sluice-zerotrust"

// zeroTrustRequest is the one work item: precedence is mesh-wide (a ZeroTrust in the operator's
// namespace covers every namespace), so the reconciler always decides everything.
var zeroTrustRequest = reconcile.Request{NamespacedName: client.ObjectKey{Name: "zerotrust"}}

// ZeroTrustReconciler issues the SPIFFE identities ZeroTrusts ask for through cert-manager: it
// decides which ZeroTrust covers each pod (zerotrust.Resolve), keeps one Certificate per service
// account in use (zerotrust.Certificate), deletes the ones no covered pod needs, and writes each
// ZeroTrust's status. It runs on the leader only.
//
// When the API server does not serve cert-manager.io/v1 Certificates at setup, it watches no
// cert-manager kind (a watch of an unknown kind would stop the manager), creates no Certificate,
// and reports Accepted=False (CertManagerNotInstalled) on every ZeroTrust that asks for
// identities; installing cert-manager then takes an operator restart.
type ZeroTrustReconciler struct {
	// Client reads ZeroTrusts, pods and issuers (metadata) from the cache and writes.
	Client client.Client
	// Certificates reads identity Certificates (unstructured); the manager's cache, since the
	// manager's client reads unstructured objects from the API server.
	Certificates client.Reader
	Recorder     events.EventRecorder
	// OperatorNamespace holds the mesh-wide ZeroTrust and the replicas' proxy reports.
	OperatorNamespace string
	// Clock defaults to the real clock; it decides when a proxy report is stale.
	Clock clock.PassiveClock

	certManager bool
}

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=zerotrusts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch

// Reconcile decides the coverage of every pod, converges the identity Certificates and writes the
// status of every ZeroTrust whose status changed.
func (r *ZeroTrustReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	mc, err := readCoverage(ctx, r.Client, r.OperatorNamespace)
	if err != nil {
		return reconcile.Result{}, err
	}
	ztPtrs, coverage, identities, serviceAccounts := mc.ZeroTrusts, mc.Coverage, mc.Identities, mc.ServiceAccounts
	byKey := map[types.NamespacedName]*meshv1alpha1.ZeroTrust{}
	for _, zt := range ztPtrs {
		byKey[zerotrust.KeyOf(zt)] = zt
	}

	now := r.Clock.Now()
	connected, stale, err := proxyreport.Connected(ctx, r.Client, r.OperatorNamespace, now, proxyreport.StaleAfter)
	if err != nil {
		return reconcile.Result{}, err
	}

	var errs []error
	certs := map[types.NamespacedName]zerotrust.CertificateState{}
	if r.certManager {
		var err error
		if certs, err = r.convergeCertificates(ctx, identities, byKey); err != nil {
			errs = append(errs, err)
		}
	}

	issuers := map[string]*bool{}
	for _, zt := range ztPtrs {
		if !zt.DeletionTimestamp.IsZero() {
			continue
		}
		exists, err := r.issuerExists(ctx, zt, issuers)
		if err != nil {
			errs = append(errs, err)
		}
		st := zerotrust.StatusOf(zerotrust.StatusInput{
			ZeroTrust: zt, Coverage: coverage, Identities: identities, ServiceAccounts: serviceAccounts,
			Certificates: certs, CertManagerInstalled: r.certManager, IssuerExists: exists,
			Phases: mc.Phases, Connected: connected,
		})
		if err := r.writeStatus(ctx, zt, st); err != nil {
			errs = append(errs, err)
		}
	}
	res := reconcile.Result{}
	if !stale.IsZero() {
		// A replica's report of connected proxies goes stale then.
		res.RequeueAfter = max(stale.Sub(now), time.Millisecond)
	}
	return res, errors.Join(errs...)
}

// convergeCertificates creates or updates the Certificate of every identity, deletes the managed
// ones no identity needs, and returns what it observed of each.
func (r *ZeroTrustReconciler) convergeCertificates(ctx context.Context, identities []zerotrust.Identity,
	zts map[types.NamespacedName]*meshv1alpha1.ZeroTrust) (map[types.NamespacedName]zerotrust.CertificateState, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(zerotrust.CertificateGVK.GroupVersion().WithKind("CertificateList"))
	if err := r.Certificates.List(ctx, list, client.MatchingLabels{zerotrust.LabelIdentity: "true", zerotrust.LabelManagedBy: zerotrust.ManagedBy}); err != nil {
		return nil, fmt.Errorf("listing identity Certificates: %w", err)
	}
	existing := map[types.NamespacedName]*unstructured.Unstructured{}
	for i := range list.Items {
		existing[client.ObjectKeyFromObject(&list.Items[i])] = &list.Items[i]
	}
	states := map[types.NamespacedName]zerotrust.CertificateState{}
	var errs []error
	wanted := map[types.NamespacedName]bool{}
	for _, id := range identities {
		key := id.Key()
		wanted[key] = true
		want := zerotrust.Certificate(id)
		have := existing[key]
		if have != nil {
			states[key] = certificateState(have)
			if zerotrust.UpToDate(have, want) {
				continue
			}
		} else {
			// A Certificate of that name that Sluice does not manage is left alone.
			other := &unstructured.Unstructured{}
			other.SetGroupVersionKind(zerotrust.CertificateGVK)
			err := r.Certificates.Get(ctx, key, other)
			if err == nil {
				states[key] = zerotrust.CertificateState{Reason: "NameTaken",
					Message: "a Certificate of this name exists that Sluice does not manage (no label " + zerotrust.LabelManagedBy + ": sluice); rename or delete it"}
				continue
			}
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("reading Certificate %s: %w", key, err))
				continue
			}
		}
		if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(zeroTrustFieldOwner), client.ForceOwnership); err != nil {
			errs = append(errs, fmt.Errorf("applying Certificate %s: %w", key, err))
			continue
		}
		if have == nil {
			states[key] = zerotrust.CertificateState{Reason: "Created", Message: "created; waiting for cert-manager to issue it"}
			r.Recorder.Eventf(id.ZeroTrust, nil, corev1.EventTypeNormal, "CertificateCreated", "CreateCertificate",
				"Created Certificate %s for %s (%d pods)", key, id.SPIFFEID(), id.Pods)
		} else {
			r.Recorder.Eventf(id.ZeroTrust, nil, corev1.EventTypeNormal, "CertificateUpdated", "UpdateCertificate",
				"Updated Certificate %s for %s to the ZeroTrust's identity settings", key, id.SPIFFEID())
		}
	}
	for key, have := range existing {
		if wanted[key] {
			continue
		}
		if err := r.Client.Delete(ctx, have); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting Certificate %s: %w", key, err))
			continue
		}
		var regarding client.Object = have
		if zt := zts[ownerOf(have)]; zt != nil {
			regarding = zt
		}
		r.Recorder.Eventf(regarding, nil, corev1.EventTypeNormal, "CertificateDeleted", "DeleteCertificate",
			"Deleted Certificate %s: no pod covered by a ZeroTrust with mTLS uses service account %s any more", key, have.GetLabels()[zerotrust.LabelServiceAccount])
	}
	return states, errors.Join(errs...)
}

// ownerOf is the ZeroTrust a Certificate was made for, from its annotation.
func ownerOf(crt *unstructured.Unstructured) types.NamespacedName {
	ns, name, _ := strings.Cut(crt.GetAnnotations()[zerotrust.AnnotationZeroTrust], "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

// certificateState reads a Certificate's Ready condition (for its current generation) and
// status.renewalTime.
func certificateState(crt *unstructured.Unstructured) zerotrust.CertificateState {
	st := zerotrust.CertificateState{Reason: "Pending", Message: "cert-manager has not reported on it yet"}
	conds, _, _ := unstructured.NestedSlice(crt.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Ready" {
			continue
		}
		gen, _, _ := unstructured.NestedInt64(m, "observedGeneration")
		st.Reason, _ = m["reason"].(string)
		st.Message, _ = m["message"].(string)
		st.Ready = m["status"] == "True" && (gen == 0 || gen >= crt.GetGeneration())
		if m["status"] == "True" && !st.Ready {
			st.Reason, st.Message = "Pending", "cert-manager has not yet acted on the latest spec"
		}
	}
	if s, ok, _ := unstructured.NestedString(crt.Object, "status", "renewalTime"); ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			st.RenewalTime = &t
		}
	}
	return st
}

// issuerExists looks up the ZeroTrust's issuer (memoized in seen); nil when it is not a
// cert-manager.io issuer (an external issuer's kinds are unknown here) or the ZeroTrust issues
// nothing.
func (r *ZeroTrustReconciler) issuerExists(ctx context.Context, zt *meshv1alpha1.ZeroTrust, seen map[string]*bool) (*bool, error) {
	id := zt.Spec.Identity
	if !r.certManager || id == nil || (id.IssuerRef.Group != "" && id.IssuerRef.Group != "cert-manager.io") {
		return nil, nil
	}
	obj := &metav1.PartialObjectMetadata{}
	key := types.NamespacedName{Name: id.IssuerRef.Name}
	if id.IssuerRef.Kind == clusterIssuerGVK.Kind {
		obj.SetGroupVersionKind(clusterIssuerGVK)
	} else {
		obj.SetGroupVersionKind(issuerGVK)
		key.Namespace = zt.Namespace
	}
	memo := obj.GetObjectKind().GroupVersionKind().Kind + " " + key.String()
	if v, ok := seen[memo]; ok {
		return v, nil
	}
	err := r.Client.Get(ctx, key, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading %s: %w", memo, err)
	}
	exists := err == nil
	seen[memo] = &exists
	return &exists, nil
}

// writeStatus patches the ZeroTrust's status when it changed.
func (r *ZeroTrustReconciler) writeStatus(ctx context.Context, zt *meshv1alpha1.ZeroTrust, st zerotrust.Status) error {
	before := zt.DeepCopy()
	zt.Status.ObservedGeneration = zt.Generation
	zt.Status.Workloads = st.Workloads
	zt.Status.NextRenewal = st.NextRenewal
	meta.SetStatusCondition(&zt.Status.Conditions, st.Accepted)
	meta.SetStatusCondition(&zt.Status.Conditions, st.Ready)
	meta.SetStatusCondition(&zt.Status.Conditions, st.StrictReady)
	zt.Status.MTLS = st.MTLS
	if equalStatus(before.Status.Status, zt.Status.Status) && before.Status.Workloads == zt.Status.Workloads &&
		apiequality.Semantic.DeepEqual(before.Status.NextRenewal, zt.Status.NextRenewal) &&
		apiequality.Semantic.DeepEqual(before.Status.MTLS, zt.Status.MTLS) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, zt, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing the status of ZeroTrust %s/%s: %w", zt.Namespace, zt.Name, err)
	}
	return nil
}

// CertManagerInstalled says whether the API server serves cert-manager.io/v1 Certificates.
func CertManagerInstalled(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(zerotrust.CertificateGVK.GroupKind(), zerotrust.CertificateGVK.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("looking up cert-manager's Certificate kind: %w", err)
	}
}

// SetupWithManager watches ZeroTrusts, pods, the replicas' proxy reports and, when cert-manager is
// installed, identity Certificates and issuers; every event wakes the one work item.
func (r *ZeroTrustReconciler) SetupWithManager(mgr ctrl.Manager) error {
	installed, err := CertManagerInstalled(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	r.certManager = installed
	if !installed {
		mgr.GetLogger().Info("cert-manager is not installed: ZeroTrust identities are not issued until it is and the operator restarts")
	}
	if r.Certificates == nil {
		r.Certificates = mgr.GetCache()
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{zeroTrustRequest}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("zerotrust").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&meshv1alpha1.ZeroTrust{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, all, builder.WithPredicates(predicate.Or(podCoverageChanged(), podPhaseChanged()))).
		Watches(&corev1.ConfigMap{}, all, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.OperatorNamespace && o.GetLabels()[zerotrust.LabelComponent] == proxyreport.Component
		})))
	if installed {
		crt := &unstructured.Unstructured{}
		crt.SetGroupVersionKind(zerotrust.CertificateGVK)
		managed := predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[zerotrust.LabelManagedBy] == zerotrust.ManagedBy && o.GetLabels()[zerotrust.LabelIdentity] == "true"
		})
		b = b.Watches(crt, all, builder.WithPredicates(managed))
		for _, gvk := range []schema.GroupVersionKind{issuerGVK, clusterIssuerGVK} {
			issuer := &metav1.PartialObjectMetadata{}
			issuer.SetGroupVersionKind(gvk)
			b = b.Watches(issuer, all, builder.WithPredicates(createOrDelete()))
		}
	}
	return b.Complete(r)
}

// podCoverageChanged passes what can change a pod's coverage: its creation, deletion, labels and
// the start of its deletion (its service account cannot change).
func podCoverageChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !apiequality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
			e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}

// podPhaseChanged passes a change of a pod's phase (StrictReady counts running pods).
func podPhaseChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		DeleteFunc: func(event.DeleteEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, after := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			return before.Status.Phase != after.Status.Phase
		},
	}
}

// createOrDelete passes only the creation and deletion of an object.
func createOrDelete() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
}
