package zerotrust

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestStrictReadiness(t *testing.T) {
	strict := zt("shop", "ns", 0, nil)
	permissive := zt("lab", "ns", 0, nil)
	permissive.Spec.MTLS.Mode = meshv1alpha1.MTLSPermissive
	off := zt("off", "ns", 0, nil)
	off.Spec.MTLS.Mode = meshv1alpha1.MTLSDisable
	pods := []Pod{pod("shop", "a1", "a"), pod("shop", "a2", "a"), pod("shop", "b1", "b"), pod("shop", "pending", "a"),
		pod("lab", "l1", "l"), pod("off", "o1", "o")}
	c := Resolve([]*meshv1alpha1.ZeroTrust{strict, permissive, off}, pods, "sluice-system")
	sas := map[types.NamespacedName]string{}
	phases := map[types.NamespacedName]corev1.PodPhase{}
	for _, p := range pods {
		sas[p.Key()] = p.ServiceAccountName()
		phases[p.Key()] = corev1.PodRunning
	}
	phases[key("shop", "pending")] = corev1.PodPending
	ready := CertificateState{Ready: true}
	certs := map[types.NamespacedName]CertificateState{
		key("shop", "sluice-identity-a"): ready, key("shop", "sluice-identity-b"): {Reason: "Issuing"}, key("lab", "sluice-identity-l"): ready,
	}
	all := map[types.NamespacedName]bool{key("shop", "a1"): true, key("shop", "a2"): true, key("shop", "b1"): true, key("lab", "l1"): true}
	tests := []struct {
		name      string
		zt        *meshv1alpha1.ZeroTrust
		certs     map[types.NamespacedName]CertificateState
		connected map[types.NamespacedName]bool
		want      string // "<status> <reason>"
		message   string
		counts    [3]int32 // running, with certificate, with proxy
		notReady  []string
	}{
		{name: "STRICT, a certificate not Ready, a proxy missing", zt: strict, certs: certs,
			connected: map[types.NamespacedName]bool{key("shop", "a1"): true, key("shop", "b1"): true},
			want:      "False NotReady", message: "2 of 3 running pods lack",
			counts: [3]int32{3, 2, 2}, notReady: []string{"shop/a2: no connected proxy", "shop/b1: no Ready certificate"}},
		{name: "STRICT, all there (the pending pod does not count)", zt: strict,
			certs:     map[types.NamespacedName]CertificateState{key("shop", "sluice-identity-a"): ready, key("shop", "sluice-identity-b"): ready},
			connected: all, want: "True Ready", message: "All 3 running pods", counts: [3]int32{3, 3, 3}},
		{name: "PERMISSIVE, safe to enforce", zt: permissive, certs: certs, connected: all,
			want: "True SafeToEnforce", counts: [3]int32{1, 1, 1}},
		{name: "PERMISSIVE, no proxy", zt: permissive, certs: certs, want: "False NotSafeToEnforce",
			counts: [3]int32{1, 1, 0}, notReady: []string{"lab/l1: no connected proxy"}},
		{name: "DISABLE", zt: off, want: "False MTLSDisabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := StatusOf(StatusInput{ZeroTrust: tc.zt, Coverage: c, ServiceAccounts: sas, Phases: phases,
				Certificates: tc.certs, Connected: tc.connected, CertManagerInstalled: true})
			if got := string(st.StrictReady.Status) + " " + st.StrictReady.Reason; got != tc.want {
				t.Errorf("StrictReady %s (%s), want %s", got, st.StrictReady.Message, tc.want)
			}
			if !strings.Contains(st.StrictReady.Message, tc.message) {
				t.Errorf("message %q lacks %q", st.StrictReady.Message, tc.message)
			}
			if tc.zt == off {
				if st.MTLS != nil {
					t.Errorf("status.mtls %+v under DISABLE", st.MTLS)
				}
				return
			}
			m := st.MTLS
			if got := [3]int32{m.RunningPods, m.WithCertificate, m.WithProxy}; got != tc.counts {
				t.Errorf("running, with certificate, with proxy = %v, want %v", got, tc.counts)
			}
			if m.SafeToEnforce != (len(tc.notReady) == 0) || strings.Join(m.NotReady, "|") != strings.Join(tc.notReady, "|") {
				t.Errorf("safeToEnforce %v, notReady %q, want %q", m.SafeToEnforce, m.NotReady, tc.notReady)
			}
		})
	}
}
