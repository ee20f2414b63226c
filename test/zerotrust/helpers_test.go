package zerotrust_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testmesh.Eventually(t, timeout, 25*time.Millisecond, check)
}

// namespace creates a namespace for the test and deletes its pods and ZeroTrusts when the test
// ends, so that a later test (or -count=2) starts clean and a mesh-wide ZeroTrust covers none of them.
//
// It returns base with a sequence number: without kube-controller-manager's garbage collector the
// CertificateRequests and Secrets of deleted Certificates stay, and must not meet a -count=2 run.
func namespace(t *testing.T, base string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", base, namespaceSeq.Add(1))
	err := k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, obj := range []client.Object{&corev1.Pod{}, &meshv1alpha1.ZeroTrust{}} {
			if err := k8s.DeleteAllOf(context.Background(), obj, client.InNamespace(name)); err != nil {
				t.Errorf("deleting the %T objects of namespace %s: %v", obj, name, err)
			}
		}
	})
	return name
}

var namespaceSeq atomic.Int64

// pods creates the service account and its pods (API objects only: nothing runs them).
func pods(t *testing.T, ns, serviceAccount string, labels map[string]string, names ...string) {
	t.Helper()
	err := k8s.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: serviceAccount}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, name := range names {
		must(t, k8s.Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{
				ServiceAccountName:           serviceAccount,
				AutomountServiceAccountToken: new(bool),
				Containers:                   []corev1.Container{{Name: "app", Image: "app"}},
			},
		}))
	}
}

// zeroTrust is a STRICT ZeroTrust whose identities the test CA ClusterIssuer signs.
func zeroTrust(ns, name string, selector *metav1.LabelSelector) *meshv1alpha1.ZeroTrust {
	return &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: meshv1alpha1.ZeroTrustSpec{
			Selector: selector,
			MTLS:     meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
			Identity: &meshv1alpha1.Identity{IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: ca.IssuerName}},
		},
	}
}

// identityCertificates lists the names of the identity Certificates of a namespace.
func identityCertificates(ctx context.Context, ns string) ([]string, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(testcertmanager.CertificateGVK.GroupVersion().WithKind("CertificateList"))
	if err := k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"mesh.sluice.dev/identity": "true"}); err != nil {
		return nil, err
	}
	var names []string
	for _, item := range list.Items {
		names = append(names, item.GetName())
	}
	return names, nil
}

func certificate(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(testcertmanager.CertificateGVK)
	return obj, k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
}

// condition waits until the ZeroTrust's condition has the status and reason for its current
// generation, and returns the ZeroTrust.
func condition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *meshv1alpha1.ZeroTrust {
	t.Helper()
	zt := &meshv1alpha1.ZeroTrust{}
	eventually(t, 15*time.Second, func() error {
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, zt); err != nil {
			return err
		}
		c := meta.FindStatusCondition(zt.Status.Conditions, condType)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != zt.Generation {
			return fmt.Errorf("ZeroTrust %s/%s: %s is %+v, want %s %s", ns, name, condType, c, status, reason)
		}
		return nil
	})
	return zt
}

// verifySPIFFE checks that the Secret holds a key pair for the SPIFFE ID, signed by the test CA.
func verifySPIFFE(t *testing.T, secret *corev1.Secret, spiffeID string) {
	t.Helper()
	leaf, err := testcertmanager.ParseCertificate(secret.Data[corev1.TLSCertKey])
	must(t, err)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("Secret %s: the certificate does not verify against the CA: %v", secret.Name, err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID {
		t.Errorf("Secret %s: URI SANs %v, want [%s]", secret.Name, leaf.URIs, spiffeID)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Secret %s: not valid for client auth: %v", secret.Name, err)
	}
	if len(secret.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Errorf("Secret %s has no private key", secret.Name)
	}
	if secret.Labels["mesh.sluice.dev/identity"] != "true" {
		t.Errorf("Secret %s: labels %v, want mesh.sluice.dev/identity=true", secret.Name, secret.Labels)
	}
}

func clientKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func parse(secret *corev1.Secret) (*x509.Certificate, error) {
	return testcertmanager.ParseCertificate(secret.Data[corev1.TLSCertKey])
}
