package webhooks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
)

// The cluster of the shop samples: Deployment and Service checkout (app=checkout, port 8080), a
// shadow Service for the mirror, and a payments Deployment whose Service has port 9090 only.
func shop(t *testing.T, ns string) {
	t.Helper()
	for _, obj := range []client.Object{
		deployment(ns, "checkout", map[string]string{"app": "checkout", "version": "v1"}),
		service(ns, "checkout", map[string]string{"app": "checkout"}, 8080),
		service(ns, "checkout-shadow", map[string]string{"app": "checkout-shadow"}, 8080),
		deployment(ns, "payments", map[string]string{"app": "payments"}),
		service(ns, "payments", map[string]string{"app": "payments"}, 9090),
		service(ns, "orders", map[string]string{"app": "orders"}, 8080),
	} {
		create(t, obj)
	}
}

// Each invalid object is refused with the message kubectl shows: the webhook, the field, and
// what to do.
func TestInvalidObjectsAreRefused(t *testing.T) {
	ns := namespace(t)
	shop(t, ns)
	create(t, sampleRollout(t, ns))
	create(t, sampleTrafficPolicy(t, ns))
	create(t, sampleZeroTrust(t, ns))

	cases := []struct {
		name string
		obj  func() client.Object
		want string
	}{
		{
			name: "second rollout of a deployment",
			obj: func() client.Object {
				ro := sampleRollout(t, ns)
				ro.Name = "checkout-again"
				return ro
			},
			want: `admission webhook "vrollout.mesh.sluice.dev" denied the request: Rollout.mesh.sluice.dev "checkout-again" is invalid: [` +
				`spec.targetRef.name: Invalid value: "checkout": Rollout checkout already releases Deployment checkout; one Rollout per Deployment: edit that Rollout or delete it first, ` +
				`spec.service.name: Invalid value: "checkout": Rollout checkout already splits the traffic of Service checkout; one Rollout per Service: edit that Rollout or delete it first]`,
		},
		{
			name: "rollout port not on the service",
			obj: func() client.Object {
				ro := sampleRollout(t, ns)
				ro.Name, ro.Spec.TargetRef.Name, ro.Spec.Service.Name = "payments", "payments", "payments"
				return ro
			},
			want: `admission webhook "vrollout.mesh.sluice.dev" denied the request: Rollout.mesh.sluice.dev "payments" is invalid: ` +
				`spec.service.port: Invalid value: 8080: Service payments has no port 8080; use one of its ports (9090)`,
		},
		{
			name: "rollout service selects other pods",
			obj: func() client.Object {
				ro := sampleRollout(t, ns)
				ro.Name, ro.Spec.TargetRef.Name, ro.Spec.Service.Name = "payments", "payments", "orders"
				return ro
			},
			want: `admission webhook "vrollout.mesh.sluice.dev" denied the request: Rollout.mesh.sluice.dev "payments" is invalid: ` +
				`spec.service.name: Invalid value: "orders": Service orders selects app=orders, which the pods of Deployment payments (labels app=payments) do not carry; ` +
				`fix the Service's selector or the pod template's labels, or name the Service that fronts this Deployment`,
		},
		{
			name: "query template with a function",
			obj: func() client.Object {
				ro := sampleRollout(t, ns)
				ro.Name, ro.Spec.TargetRef.Name, ro.Spec.Service.Name, ro.Spec.Service.Port = "payments", "payments", "payments", 9090
				ro.Spec.Analysis.Metrics[2].Query = `sum(rate(x[{{ printf "%s" .Interval }}]))`
				return ro
			},
			want: `admission webhook "vrollout.mesh.sluice.dev" denied the request: Rollout.mesh.sluice.dev "payments" is invalid: ` +
				`spec.analysis.metrics[2].query: Invalid value: "sum(rate(x[{{ printf \"%s\" .Interval }}]))": not a valid query template (query:1: function "printf" not defined); ` +
				`the only template actions allowed are {{ .CanaryRevision }}, {{ .Interval }}, {{ .Name }}, {{ .Namespace }}, {{ .Service }}, {{ .StableRevision }}, {{ .Workload }}`,
		},
		{
			name: "second policy for a service",
			obj: func() client.Object {
				tp := sampleTrafficPolicy(t, ns)
				tp.Name = "checkout-retries"
				return tp
			},
			want: `admission webhook "vtrafficpolicy.mesh.sluice.dev" denied the request: TrafficPolicy.mesh.sluice.dev "checkout-retries" is invalid: ` +
				`spec.targetRef.name: Invalid value: "checkout": TrafficPolicy checkout already targets Service checkout; one policy per Service: merge the two into checkout or delete it first`,
		},
		{
			name: "subset that contradicts the service",
			obj: func() client.Object {
				tp := sampleTrafficPolicy(t, ns)
				tp.Name, tp.Spec.TargetRef.Name = "payments", "payments"
				tp.Spec.Subsets[0].Labels = map[string]string{"app": "checkout", "version": "v2"}
				return tp
			},
			want: `admission webhook "vtrafficpolicy.mesh.sluice.dev" denied the request: TrafficPolicy.mesh.sluice.dev "payments" is invalid: ` +
				`spec.subsets[0].labels[app]: Invalid value: "checkout": Service payments selects app=payments, so no pod of it has app=checkout; ` +
				`pick labels that tell the Service's pods apart, such as version`,
		},
		{
			name: "regex that RE2 does not compile",
			obj: func() client.Object {
				tp := sampleTrafficPolicy(t, ns)
				tp.Name, tp.Spec.TargetRef.Name = "orders", "orders"
				tp.Spec.Routes[0].Match.PathPrefix = nil
				tp.Spec.Routes[0].Match.PathRegex = ptr.To(`^/api/(?!internal)`)
				return tp
			},
			want: `admission webhook "vtrafficpolicy.mesh.sluice.dev" denied the request: TrafficPolicy.mesh.sluice.dev "orders" is invalid: ` +
				"spec.routes[0].match.pathRegex: Invalid value: \"^/api/(?!internal)\": not a valid RE2 regular expression (error parsing regexp: invalid or unsupported Perl syntax: `(?!`); " +
				"RE2 has no lookaround or backreferences",
		},
		{
			name: "second namespace-wide zerotrust",
			obj: func() client.Object {
				zt := sampleZeroTrust(t, ns)
				zt.Name = "shop-again"
				return zt
			},
			want: `admission webhook "vzerotrust.mesh.sluice.dev" denied the request: ZeroTrust.mesh.sluice.dev "shop-again" is invalid: ` +
				`spec.selector: Invalid value: "": ZeroTrust shop already covers the whole namespace; merge the two or give this one a more specific selector`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := refused(t, tc.obj()); got != tc.want {
				t.Errorf("refused with\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// An object larger than the webhook accepts (etcd could not store it anyway) is refused before it
// is decoded, with a message that says so.
func TestOversizedObjectIsRefused(t *testing.T) {
	ns := namespace(t)
	tp := sampleTrafficPolicy(t, ns)
	labels := map[string]string{}
	for i := range 1700 {
		labels[fmt.Sprintf("label-%04d", i)] = strings.Repeat("v", 1000)
	}
	tp.Spec.Subsets[0].Labels = labels
	got := refused(t, tp)
	want := `admission webhook "vtrafficpolicy.mesh.sluice.dev" denied the request: the object is `
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "bytes, more than the 1572864 the webhook accepts; split it") {
		t.Errorf("refused with\n%s\nwant\n%s<size> bytes, more than the 1572864 the webhook accepts; split it", got, want)
	}
}

// Risky but legal settings, and references to objects that do not exist yet, are admitted with
// warnings the client receives.
func TestWarningsReachTheClient(t *testing.T) {
	ns := namespace(t)
	ro := sampleRollout(t, ns)
	ro.Spec.Analysis.FailureLimit = 0
	ro.Spec.Analysis.Interval = &metav1.Duration{Duration: 10_000_000_000}
	wantWarnings(t, create(t, ro),
		"spec.targetRef.name: Deployment "+ns+"/checkout does not exist yet; the Rollout waits for it",
		"spec.service.name: Service "+ns+"/checkout does not exist yet; traffic is split once it does",
		"spec.analysis.failureLimit: 0 with a 10s interval rolls the canary back on its first failed check, and short windows hold few requests; allow 1 or 2 failures or lengthen the interval",
	)

	tp := sampleTrafficPolicy(t, ns)
	tp.Spec.FaultInjection = nil
	tp.Spec.Retries.RetryNonIdempotent = true
	wantWarnings(t, create(t, tp),
		"spec.targetRef.name: Service "+ns+"/checkout does not exist yet; the policy applies once it does",
		"spec.mirror.service: Service "+ns+"/checkout-shadow does not exist yet; nothing is mirrored until it does",
		"spec.retries.retryNonIdempotent: POST and PATCH requests are retried too: a retry after a lost response applies them twice; make them idempotent (an idempotency key) or turn this off",
	)
}

// The samples are admitted as written, in a cluster that has what they name (the ClusterIssuer
// mesh-ca included): the only warning is the one the sample's fault injection deserves.
func TestSamplesAreAdmitted(t *testing.T) {
	ns := namespace(t)
	shop(t, ns)
	wantWarnings(t, create(t, sampleRollout(t, ns)))
	wantWarnings(t, create(t, sampleTrafficPolicy(t, ns)),
		"spec.faultInjection.abort.percent: 1% of requests fail on purpose; remove faultInjection when the test is over")
	wantWarnings(t, create(t, sampleZeroTrust(t, ns)))
}

// A ZeroTrust's issuer is looked up in cert-manager: a missing one or one that is not Ready is a
// warning (GitOps may apply it next), never a refusal.
func TestZeroTrustIssuerIsLookedUp(t *testing.T) {
	ns := namespace(t)
	unready := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"ca": map[string]any{"secretName": "no-such-secret"}}}}
	unready.SetGroupVersionKind(testcertmanager.IssuerGVK)
	unready.SetNamespace(ns)
	unready.SetName("unready")
	create(t, unready)

	missing := sampleZeroTrust(t, ns)
	missing.Name, missing.Spec.Rules = "missing-issuer", nil
	missing.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}
	missing.Spec.Identity.IssuerRef.Name = "no-such-ca"
	wantWarnings(t, create(t, missing),
		"spec.identity.issuerRef.name: cert-manager ClusterIssuer no-such-ca does not exist yet; no workload certificate is issued until it does")

	notReady := sampleZeroTrust(t, ns)
	notReady.Name, notReady.Spec.Rules = "unready-issuer", nil
	notReady.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}
	notReady.Spec.Identity.IssuerRef.Kind, notReady.Spec.Identity.IssuerRef.Name = "Issuer", "unready"
	wantWarnings(t, create(t, notReady),
		"spec.identity.issuerRef.name: cert-manager Issuer "+ns+"/unready is not Ready; workload certificates wait for it")
}

// A ZeroTrust that names no identity takes the mesh-wide ZeroTrust's; the patch adds nothing else.
func TestZeroTrustTakesTheMeshWideIdentity(t *testing.T) {
	ctx := context.Background()
	meshWide := sampleZeroTrust(t, operatorNamespace)
	meshWide.Name, meshWide.Spec.Rules = "mesh", nil
	create(t, meshWide)
	t.Cleanup(func() { _ = kube.Delete(ctx, meshWide) })

	ns := namespace(t)
	zt := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "strict"}}
	zt.Spec.MTLS.Mode = meshv1alpha1.MTLSStrict
	got := create(t, zt)
	wantWarnings(t, got,
		"spec.identity: copied from the mesh-wide ZeroTrust sluice-system/mesh (issuer ClusterIssuer mesh-ca); later changes to that one do not reach this copy")
	stored := &meshv1alpha1.ZeroTrust{}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(zt), stored); err != nil {
		t.Fatal(err)
	}
	id := stored.Spec.Identity
	if id == nil || id.IssuerRef != meshWide.Spec.Identity.IssuerRef || id.TrustDomain != "cluster.local" || id.Duration.Duration != meshWide.Spec.Identity.Duration.Duration {
		t.Errorf("stored identity %+v; want the mesh-wide one %+v", id, meshWide.Spec.Identity)
	}
	if stored.Spec.Selector != nil || len(stored.Spec.Rules) != 0 {
		t.Errorf("the defaulter changed more than spec.identity: %+v", stored.Spec)
	}
}

func wantWarnings(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
