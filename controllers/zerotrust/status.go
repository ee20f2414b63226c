package zerotrust

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// CertificateState is what the controller observed of one identity Certificate.
type CertificateState struct {
	// Ready is the Certificate's Ready condition True for its current generation.
	Ready bool
	// Reason and Message are the Ready condition's, or say why there is no Certificate.
	Reason, Message string
	// RenewalTime is status.renewalTime, nil while unknown.
	RenewalTime *time.Time
}

// StatusInput is what a ZeroTrust's status is derived from.
type StatusInput struct {
	ZeroTrust  *meshv1alpha1.ZeroTrust
	Coverage   Coverage
	Identities []Identity
	// ServiceAccounts is the service account of each pod.
	ServiceAccounts map[types.NamespacedName]string
	// Certificates are the identity Certificates observed, by namespace and name; a missing one
	// is not created yet.
	Certificates map[types.NamespacedName]CertificateState
	// CertManagerInstalled says whether the API server serves cert-manager.io/v1 Certificates.
	CertManagerInstalled bool
	// IssuerExists says whether the ZeroTrust's issuerRef names an existing Issuer or
	// ClusterIssuer; nil when it could not be looked up (another group's issuer).
	IssuerExists *bool
	// Phases is each pod's phase; only running pods count for StrictReady.
	Phases map[types.NamespacedName]corev1.PodPhase
	// Connected holds the pods with a proxy connected to the xDS server of some replica.
	Connected map[types.NamespacedName]bool
}

// Status is a ZeroTrust's derived status.
type Status struct {
	Workloads   int32
	NextRenewal *metav1.Time
	Accepted    metav1.Condition
	Ready       metav1.Condition
	StrictReady metav1.Condition
	MTLS        *meshv1alpha1.MTLSStatus
}

// StatusOf derives a ZeroTrust's status: the pods it covers, the earliest renewal of the
// Certificates of the identities its pods use, and the conditions Accepted (the spec is valid, does
// not conflict, and its issuer exists), Ready (every identity its pods need has a Ready
// Certificate) and StrictReady with status.mtls (every covered running pod has a Ready certificate
// and a connected proxy).
func StatusOf(in StatusInput) Status {
	zt := in.ZeroTrust
	key := KeyOf(zt)
	gen := zt.Generation
	pods := in.Coverage.Workloads[key]
	st := Status{Workloads: int32(len(pods))}
	st.StrictReady, st.MTLS = strictReadiness(in)
	cond := func(t string, ok bool, reason, format string, args ...any) metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: fmt.Sprintf(format, args...), ObservedGeneration: gen}
	}

	issues := issuesIdentities(zt)
	st.Accepted = cond(meshv1alpha1.ConditionAccepted, true, "Accepted", "The ZeroTrust is valid and covers %d pods.", len(pods))
	switch {
	case in.Coverage.InvalidSelectors[key] != nil:
		st.Accepted = cond(meshv1alpha1.ConditionAccepted, false, "InvalidSelector", "spec.selector: %v; the ZeroTrust covers no pod until it is fixed",
			in.Coverage.InvalidSelectors[key])
	case in.Coverage.Conflicts[key] != nil:
		st.Accepted = cond(meshv1alpha1.ConditionAccepted, false, "Conflicted", "%s", in.Coverage.Conflicts[key].Message())
	case issues && !in.CertManagerInstalled:
		st.Accepted = cond(meshv1alpha1.ConditionAccepted, false, "CertManagerNotInstalled",
			"cert-manager is not installed: the API server does not serve cert-manager.io/v1 Certificates, so no identity can be issued; install cert-manager, then restart the operator")
	case issues && in.IssuerExists != nil && !*in.IssuerExists:
		ref := zt.Spec.Identity.IssuerRef
		kind := ref.Kind
		if kind == "" {
			kind = "Issuer"
		}
		where := " in namespace " + zt.Namespace
		if kind == "ClusterIssuer" {
			where = ""
		}
		st.Accepted = cond(meshv1alpha1.ConditionAccepted, false, "IssuerNotFound",
			"spec.identity.issuerRef: %s %s does not exist%s; create it or name an existing one (identities are issued once it exists)", kind, ref.Name, where)
	}

	if !issues {
		st.Ready = cond(meshv1alpha1.ConditionReady, st.Accepted.Status == metav1.ConditionTrue, "MTLSDisabled", "No spec.identity: no identities are issued.")
		if st.Accepted.Status != metav1.ConditionTrue {
			st.Ready.Reason, st.Ready.Message = st.Accepted.Reason, "The ZeroTrust is not accepted; see Accepted."
		}
		return st
	}

	// The identities this ZeroTrust's pods use.
	used := map[types.NamespacedName]bool{}
	for _, pod := range pods {
		used[types.NamespacedName{Namespace: pod.Namespace, Name: CertificateName(in.ServiceAccounts[pod])}] = true
	}
	var notReady []string
	total := 0
	for _, id := range in.Identities {
		k := id.Key()
		if !used[k] {
			continue
		}
		total++
		cs, ok := in.Certificates[k]
		switch {
		case !ok:
			notReady = append(notReady, fmt.Sprintf("%s (not created yet)", k))
		case !cs.Ready:
			notReady = append(notReady, fmt.Sprintf("%s (%s: %s)", k, cs.Reason, cs.Message))
		}
		if ok && cs.RenewalTime != nil && (st.NextRenewal == nil || cs.RenewalTime.Before(st.NextRenewal.Time)) {
			st.NextRenewal = &metav1.Time{Time: cs.RenewalTime.UTC()}
		}
	}
	sort.Strings(notReady)
	switch {
	case st.Accepted.Status != metav1.ConditionTrue && st.Accepted.Reason != "Conflicted":
		st.Ready = cond(meshv1alpha1.ConditionReady, false, st.Accepted.Reason, "The ZeroTrust is not accepted; see Accepted.")
	case len(notReady) > 0:
		shown := notReady
		if len(shown) > 3 {
			shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(notReady)-3))
		}
		st.Ready = cond(meshv1alpha1.ConditionReady, false, "CertificatesNotReady", "%d of %d identity Certificates are not Ready: %s",
			len(notReady), total, strings.Join(shown, "; "))
	case total == 0 && st.Accepted.Reason == "Conflicted":
		st.Ready = cond(meshv1alpha1.ConditionReady, false, "Conflicted", "The ZeroTrust covers no pod: see Accepted.")
	case total == 0:
		st.Ready = cond(meshv1alpha1.ConditionReady, true, "NoWorkloads", "No covered pod needs an identity yet.")
	default:
		st.Ready = cond(meshv1alpha1.ConditionReady, true, "Ready", "All %d identity Certificates are Ready.", total)
	}
	return st
}
