package zerotrust_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// A namespace ZeroTrust gets one issued Certificate per service account in use; a second one of the
// same scope is Conflicted; a workload selector overrides it (DISABLE takes an identity away); a
// spec change updates the Certificates; deleting the ZeroTrust deletes them.
func TestNamespaceIdentities(t *testing.T) {
	ctx := t.Context()
	ns := namespace(t, "zt-shop")
	pods(t, ns, "web", map[string]string{"app": "web"}, "web-1", "web-2")
	pods(t, ns, "api", map[string]string{"app": "api"}, "api-1")

	start := time.Now()
	must(t, k8s.Create(ctx, zeroTrust(ns, "shop", nil)))
	for _, sa := range []string{"web", "api"} {
		secret, err := cm.WaitCertificate(ctx, ns, "sluice-identity-"+sa)
		must(t, err)
		verifySPIFFE(t, secret, "spiffe://cluster.local/ns/"+ns+"/sa/"+sa)
	}
	zt := condition(t, ns, "shop", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
	t.Logf("2 identities issued and the ZeroTrust Ready in %v", time.Since(start).Round(time.Millisecond))
	if zt.Status.Workloads != 3 {
		t.Errorf("status.workloads %d, want 3", zt.Status.Workloads)
	}
	if zt.Status.NextRenewal == nil || time.Until(zt.Status.NextRenewal.Time) < 15*time.Hour {
		t.Errorf("status.nextRenewal %v, want about 16h from now (24h duration, 8h renewBefore)", zt.Status.NextRenewal)
	}
	crt, err := certificate(ctx, ns, "sluice-identity-web")
	must(t, err)
	if refs := crt.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != zt.UID {
		t.Errorf("owner references %v, want the ZeroTrust", refs)
	}
	if got := crt.GetLabels()["app.kubernetes.io/managed-by"]; got != "sluice" {
		t.Errorf("managed-by label %q", got)
	}
	names, err := identityCertificates(ctx, ns)
	must(t, err)
	if !slices.Equal(names, []string{"sluice-identity-api", "sluice-identity-web"}) {
		t.Errorf("identity Certificates %v, want one per service account", names)
	}
	var events corev1.EventList
	eventually(t, 5*time.Second, func() error {
		if err := k8s.List(ctx, &events); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "shop" && e.Reason == "CertificateCreated" {
				return nil
			}
		}
		return fmt.Errorf("no CertificateCreated event on the ZeroTrust among %d events", len(events.Items))
	})

	t.Run("a second namespace-wide ZeroTrust is Conflicted", func(t *testing.T) {
		must(t, k8s.Create(ctx, zeroTrust(ns, "shop-too", &metav1.LabelSelector{})))
		newer := condition(t, ns, "shop-too", meshv1alpha1.ConditionAccepted, metav1.ConditionFalse, "Conflicted")
		msg := meta.FindStatusCondition(newer.Status.Conditions, meshv1alpha1.ConditionAccepted).Message
		if !strings.Contains(msg, "ZeroTrust "+ns+"/shop is older") || !strings.Contains(msg, "web-1") {
			t.Errorf("Accepted says %q; want it to name the winner and the pods", msg)
		}
		if newer.Status.Workloads != 0 {
			t.Errorf("the conflicted ZeroTrust covers %d pods", newer.Status.Workloads)
		}
		condition(t, ns, "shop", meshv1alpha1.ConditionAccepted, metav1.ConditionTrue, "Accepted")
		must(t, k8s.Delete(ctx, newer))
	})

	t.Run("a workload selector overrides the namespace", func(t *testing.T) {
		off := zeroTrust(ns, "api-plain", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}})
		off.Spec.MTLS.Mode = meshv1alpha1.MTLSDisable
		off.Spec.Identity = nil
		must(t, k8s.Create(ctx, off))
		eventually(t, 10*time.Second, func() error {
			names, err := identityCertificates(ctx, ns)
			if err != nil {
				return err
			}
			if !slices.Equal(names, []string{"sluice-identity-web"}) {
				return fmt.Errorf("identity Certificates %v, want only web's", names)
			}
			return nil
		})
		off = condition(t, ns, "api-plain", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "MTLSDisabled")
		if off.Status.Workloads != 1 {
			t.Errorf("the selector ZeroTrust covers %d pods, want 1", off.Status.Workloads)
		}
		eventually(t, 10*time.Second, func() error {
			shop := condition(t, ns, "shop", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
			if shop.Status.Workloads != 2 {
				return fmt.Errorf("the namespace ZeroTrust covers %d pods, want 2", shop.Status.Workloads)
			}
			return nil
		})
	})

	t.Run("a spec change updates the Certificates", func(t *testing.T) {
		shop := &meshv1alpha1.ZeroTrust{}
		must(t, k8s.Get(ctx, clientKey(ns, "shop"), shop))
		shop.Spec.Identity.Duration = &metav1.Duration{Duration: 2 * time.Hour}
		shop.Spec.Identity.RenewBefore = &metav1.Duration{Duration: time.Hour}
		shop.Spec.Identity.TrustDomain = "shop.example"
		must(t, k8s.Update(ctx, shop))
		eventually(t, 10*time.Second, func() error {
			crt, err := certificate(ctx, ns, "sluice-identity-web")
			if err != nil {
				return err
			}
			d, _, _ := unstructured.NestedString(crt.Object, "spec", "duration")
			uris, _, _ := unstructured.NestedStringSlice(crt.Object, "spec", "uris")
			if d != "2h0m0s" || len(uris) != 1 || uris[0] != "spiffe://shop.example/ns/"+ns+"/sa/web" {
				return fmt.Errorf("Certificate: duration %s, uris %v", d, uris)
			}
			return nil
		})
		// cert-manager re-issues for the new SAN.
		eventually(t, 15*time.Second, func() error {
			secret := &corev1.Secret{}
			if err := k8s.Get(ctx, clientKey(ns, "sluice-identity-web"), secret); err != nil {
				return err
			}
			leaf, err := parse(secret)
			if err != nil {
				return err
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://shop.example/ns/"+ns+"/sa/web" {
				return fmt.Errorf("the Secret still holds %v", leaf.URIs)
			}
			return nil
		})
		shop = condition(t, ns, "shop", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
		if shop.Status.NextRenewal == nil || time.Until(shop.Status.NextRenewal.Time) > 90*time.Minute {
			t.Errorf("status.nextRenewal %v, want within the hour (2h duration, 1h renewBefore)", shop.Status.NextRenewal)
		}
	})

	t.Run("deleting the ZeroTrust deletes its Certificates", func(t *testing.T) {
		must(t, k8s.Delete(ctx, zeroTrust(ns, "shop", nil)))
		eventually(t, 10*time.Second, func() error {
			names, err := identityCertificates(ctx, ns)
			if err != nil {
				return err
			}
			if len(names) > 0 {
				return fmt.Errorf("identity Certificates %v remain", names)
			}
			return nil
		})
	})
}

// A ZeroTrust whose issuer does not exist is not Accepted, and says which field to fix.
func TestMissingIssuer(t *testing.T) {
	ns := namespace(t, "zt-missing")
	pods(t, ns, "app", nil, "app-1")
	zt := zeroTrust(ns, "typo", nil)
	zt.Spec.Identity.IssuerRef = meshv1alpha1.IssuerRef{Kind: "Issuer", Name: "no-such-issuer"}
	must(t, k8s.Create(t.Context(), zt))
	zt = condition(t, ns, "typo", meshv1alpha1.ConditionAccepted, metav1.ConditionFalse, "IssuerNotFound")
	for _, c := range zt.Status.Conditions {
		if c.Type == meshv1alpha1.ConditionAccepted && !strings.Contains(c.Message, "spec.identity.issuerRef: Issuer no-such-issuer does not exist") {
			t.Errorf("Accepted says %q", c.Message)
		}
	}
	condition(t, ns, "typo", meshv1alpha1.ConditionReady, metav1.ConditionFalse, "IssuerNotFound")
	must(t, k8s.Delete(t.Context(), zt))
}

// A ZeroTrust in the operator's namespace covers the pods of namespaces without their own; its
// Certificates carry an annotation instead of an owner reference, and go when it goes.
func TestMeshWide(t *testing.T) {
	ctx := t.Context()
	must(t, client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})))
	ns := namespace(t, "zt-meshwide")
	pods(t, ns, "worker", nil, "worker-1")
	mesh := zeroTrust(operatorNamespace, "mesh", nil)
	must(t, k8s.Create(ctx, mesh))
	t.Cleanup(func() {
		if err := k8s.Delete(context.Background(), mesh); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
	secret, err := cm.WaitCertificate(ctx, ns, "sluice-identity-worker")
	must(t, err)
	verifySPIFFE(t, secret, "spiffe://cluster.local/ns/"+ns+"/sa/worker")
	crt, err := certificate(ctx, ns, "sluice-identity-worker")
	must(t, err)
	if len(crt.GetOwnerReferences()) != 0 || crt.GetAnnotations()["mesh.sluice.dev/zerotrust"] != operatorNamespace+"/mesh" {
		t.Errorf("owners %v, annotations %v; want no owner and the annotation", crt.GetOwnerReferences(), crt.GetAnnotations())
	}
	mesh = condition(t, operatorNamespace, "mesh", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
	if mesh.Status.Workloads < 1 {
		t.Errorf("status.workloads %d", mesh.Status.Workloads)
	}
	must(t, k8s.Delete(ctx, mesh))
	eventually(t, 10*time.Second, func() error {
		if _, err := certificate(ctx, ns, "sluice-identity-worker"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Certificate remains (%w)", err)
		}
		return nil
	})
}

// Without cert-manager's CRDs the operator still starts: ZeroTrusts that ask for identities say
// cert-manager is missing, and the others work.
func TestWithoutCertManager(t *testing.T) {
	bare, err := testenv.Start()
	must(t, err)
	t.Cleanup(func() { _ = bare.Stop() })
	operator, err := testmesh.StartOperator(bare.Config, manager.Options{SkipRolloutController: true, Namespace: operatorNamespace})
	must(t, err)
	t.Cleanup(operator.Stop)

	ctx := t.Context()
	c := bare.Client
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}))
	strict := zeroTrust("shop", "strict", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})
	off := zeroTrust("shop", "off", nil)
	off.Spec.MTLS.Mode, off.Spec.Identity = meshv1alpha1.MTLSDisable, nil
	must(t, c.Create(ctx, strict))
	must(t, c.Create(ctx, off))
	for _, want := range []struct{ name, condType, status, reason string }{
		{"strict", meshv1alpha1.ConditionAccepted, "False", "CertManagerNotInstalled"},
		{"off", meshv1alpha1.ConditionReady, "True", "MTLSDisabled"},
	} {
		eventually(t, 15*time.Second, func() error {
			zt := &meshv1alpha1.ZeroTrust{}
			if err := c.Get(ctx, clientKey("shop", want.name), zt); err != nil {
				return err
			}
			got := meta.FindStatusCondition(zt.Status.Conditions, want.condType)
			if got == nil || string(got.Status) != want.status || got.Reason != want.reason {
				return fmt.Errorf("ZeroTrust %s: %s is %+v, want %s %s", want.name, want.condType, got, want.status, want.reason)
			}
			return nil
		})
	}
}
