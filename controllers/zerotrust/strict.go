package zerotrust

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// maxNotReady bounds status.mtls.notReady.
const maxNotReady = 10

// strictReadiness decides StrictReady and status.mtls: whether every covered running pod has a
// Ready certificate (its service account's) and a connected proxy. A pod that is not running is
// not counted: it gets both when it starts. nil status under DISABLE or without identities.
func strictReadiness(in StatusInput) (metav1.Condition, *meshv1alpha1.MTLSStatus) {
	zt := in.ZeroTrust
	cond := metav1.Condition{Type: meshv1alpha1.ConditionStrictReady, Status: metav1.ConditionFalse, ObservedGeneration: zt.Generation}
	// DISABLE with spec.identity issues identities (for the xDS channel), but has no STRICT to be
	// ready for.
	if zt.Spec.MTLS.Mode == meshv1alpha1.MTLSDisable || !issuesIdentities(zt) {
		cond.Reason, cond.Message = "MTLSDisabled", "mTLS is disabled, or the ZeroTrust has no spec.identity."
		return cond, nil
	}
	st := &meshv1alpha1.MTLSStatus{}
	var notReady []string
	for _, pod := range in.Coverage.Workloads[KeyOf(zt)] {
		if in.Phases[pod] != corev1.PodRunning {
			continue
		}
		st.RunningPods++
		var lacks []string
		crt := types.NamespacedName{Namespace: pod.Namespace, Name: CertificateName(in.ServiceAccounts[pod])}
		if in.Certificates[crt].Ready {
			st.WithCertificate++
		} else {
			lacks = append(lacks, "no Ready certificate")
		}
		if in.Connected[pod] {
			st.WithProxy++
		} else {
			lacks = append(lacks, "no connected proxy")
		}
		if len(lacks) > 0 {
			notReady = append(notReady, pod.String()+": "+strings.Join(lacks, ", "))
		}
	}
	sort.Strings(notReady)
	st.SafeToEnforce = len(notReady) == 0
	if len(notReady) > maxNotReady {
		st.NotReady = notReady[:maxNotReady]
	} else {
		st.NotReady = notReady
	}
	strict := zt.Spec.MTLS.Mode == meshv1alpha1.MTLSStrict
	switch {
	case st.RunningPods == 0:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "NoRunningPods", "No covered pod is running."
	case st.SafeToEnforce && strict:
		cond.Status, cond.Reason = metav1.ConditionTrue, "Ready"
		cond.Message = fmt.Sprintf("All %d running pods have a Ready certificate and a connected proxy.", st.RunningPods)
	case st.SafeToEnforce:
		cond.Status, cond.Reason = metav1.ConditionTrue, "SafeToEnforce"
		cond.Message = fmt.Sprintf("All %d running pods have a Ready certificate and a connected proxy: STRICT would refuse only callers outside the mesh.", st.RunningPods)
	default:
		cond.Reason = "NotSafeToEnforce"
		if strict {
			cond.Reason = "NotReady"
		}
		shown := notReady
		if len(shown) > 3 {
			shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(notReady)-3))
		}
		cond.Message = fmt.Sprintf("%d of %d running pods lack a Ready certificate or a connected proxy (a sidecar or a proxyless bootstrap): %s",
			len(notReady), st.RunningPods, strings.Join(shown, "; "))
	}
	return cond, st
}
