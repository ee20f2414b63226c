package zerotrust

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestStatusOf(t *testing.T) {
	ns := zt("shop", "ns", 0, nil)
	ns.Generation = 3
	newer := zt("shop", "newer", 5, nil)
	off := zt("other", "off", 0, nil)
	off.Spec.MTLS.Mode, off.Spec.Identity = meshv1alpha1.MTLSDisable, nil
	pods := []Pod{pod("shop", "a1", "a"), pod("shop", "a2", "a"), pod("shop", "b1", "b"), pod("other", "o", "o")}
	c := Resolve([]*meshv1alpha1.ZeroTrust{ns, newer, off}, pods, "sluice-system")
	ids := Identities(c, pods)
	sas := map[types.NamespacedName]string{}
	for _, p := range pods {
		sas[p.Key()] = p.ServiceAccountName()
	}
	early, late := t0.Add(time.Hour), t0.Add(2*time.Hour)
	ready := map[types.NamespacedName]CertificateState{
		key("shop", "sluice-identity-a"): {Ready: true, Reason: "Ready", RenewalTime: &late},
		key("shop", "sluice-identity-b"): {Ready: true, Reason: "Ready", RenewalTime: &early},
	}
	in := func(z *meshv1alpha1.ZeroTrust, certs map[types.NamespacedName]CertificateState, installed bool, issuer *bool) StatusInput {
		return StatusInput{ZeroTrust: z, Coverage: c, Identities: ids, ServiceAccounts: sas, Certificates: certs,
			CertManagerInstalled: installed, IssuerExists: issuer}
	}
	tests := []struct {
		name                  string
		in                    StatusInput
		workloads             int32
		accepted, ready       string // "<status> <reason>"
		acceptedMsg, readyMsg string // substrings
		nextRenewal           *time.Time
	}{
		{name: "every Certificate Ready", in: in(ns, ready, true, ptr.To(true)), workloads: 3,
			accepted: "True Accepted", ready: "True Ready", readyMsg: "All 2 identity Certificates", nextRenewal: &early},
		{name: "one not issued yet", in: in(ns, map[types.NamespacedName]CertificateState{key("shop", "sluice-identity-a"): ready[key("shop", "sluice-identity-a")]}, true, ptr.To(true)),
			workloads: 3, accepted: "True Accepted", ready: "False CertificatesNotReady", readyMsg: "1 of 2 identity Certificates are not Ready: shop/sluice-identity-b (not created yet)", nextRenewal: &late},
		{name: "conflicted", in: in(newer, ready, true, ptr.To(true)), accepted: "False Conflicted", acceptedMsg: "ZeroTrust shop/ns is older",
			ready: "False Conflicted"},
		{name: "missing issuer", in: in(ns, ready, true, ptr.To(false)), workloads: 3, accepted: "False IssuerNotFound",
			acceptedMsg: "spec.identity.issuerRef: ClusterIssuer ca does not exist", ready: "False IssuerNotFound",
			nextRenewal: &early}, // certificates issued before still renew
		{name: "no cert-manager", in: in(ns, nil, false, nil), workloads: 3, accepted: "False CertManagerNotInstalled",
			acceptedMsg: "cert-manager is not installed", ready: "False CertManagerNotInstalled"},
		{name: "DISABLE", in: in(off, nil, false, nil), workloads: 1, accepted: "True Accepted", ready: "True MTLSDisabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := StatusOf(tc.in)
			if st.Workloads != tc.workloads {
				t.Errorf("workloads %d, want %d", st.Workloads, tc.workloads)
			}
			for _, check := range []struct {
				c         metav1.Condition
				want, msg string
			}{{st.Accepted, tc.accepted, tc.acceptedMsg}, {st.Ready, tc.ready, tc.readyMsg}} {
				if got := string(check.c.Status) + " " + check.c.Reason; got != check.want {
					t.Errorf("%s: %s (%s), want %s", check.c.Type, got, check.c.Message, check.want)
				}
				if !strings.Contains(check.c.Message, check.msg) {
					t.Errorf("%s: message %q does not say %q", check.c.Type, check.c.Message, check.msg)
				}
				if check.c.ObservedGeneration != tc.in.ZeroTrust.Generation {
					t.Errorf("%s: observedGeneration %d", check.c.Type, check.c.ObservedGeneration)
				}
			}
			switch {
			case tc.nextRenewal == nil && st.NextRenewal != nil:
				t.Errorf("nextRenewal %v, want none", st.NextRenewal)
			case tc.nextRenewal != nil && (st.NextRenewal == nil || !st.NextRenewal.Time.Equal(*tc.nextRenewal)):
				t.Errorf("nextRenewal %v, want %v", st.NextRenewal, tc.nextRenewal)
			}
		})
	}
}
