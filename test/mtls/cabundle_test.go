package mtls_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// rotationTrustDomain keeps this test's roots apart from the other tests' identities: a trust
// bundle is the union of its trust domain's roots.
const rotationTrustDomain = "rotation.test"

// A CA rotation under STRICT mTLS with continuous calls. The ClusterIssuer the ZeroTrusts name is
// switched from one CA to another; a canary identity is renewed first, so the trust bundles hold
// both roots; then the server's and the client's identities are renewed, one after the other. Two
// namespaces run the same workloads and see the same rotation: in one, the workloads trust their
// namespace's trust bundle (ConfigMap sluice-trust-bundle), in the other only their own Secret's
// ca.crt. No call may fail with the bundle; with ca.crt alone the calls between a renewed and a
// not yet renewed workload fail. Once no Secret carries the old root, the bundle keeps it for the
// retention (TestMain sets it to rotationRetention), then drops it; so does the trust bundle
// Envoy sidecars get over SDS, at the same time.
func TestTrustBundleCARotation(t *testing.T) {
	if podnetErr != nil {
		t.Skip(podnetErr)
	}
	ctx := t.Context()
	oldCA, newCA := createCA(t, "rotation-old"), createCA(t, "rotation-new")
	issuer := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"ca": map[string]any{"secretName": oldCA.SecretName}}}}
	issuer.SetGroupVersionKind(testcertmanager.ClusterIssuerGVK)
	issuer.SetName("rotating-ca")
	must(t, env.Client.Create(ctx, issuer))
	_, err := cm.WaitReady(ctx, testcertmanager.ClusterIssuerGVK, "", issuer.GetName())
	must(t, err)

	withBundle := newRotationMesh(t, "ca-bundle", "192.0.2.121", true)
	perSecret := newRotationMesh(t, "ca-per-secret", "192.0.2.122", false)
	meshes := []*rotationMesh{withBundle, perSecret}
	canary := rotationIdentity{ns: withBundle.ns, sa: "canary"}
	createPod(t, canary.ns, "canary-0", canary.sa)
	waitSecretRoot(t, canary, oldCA)
	for _, m := range meshes {
		m.startLoad(t)
	}
	defer func() {
		for _, m := range meshes {
			m.load.stop()
		}
	}()
	sds := watchSDSBundle(t, rotationTrustDomain)
	time.Sleep(time.Second) // calls on the old CA

	// The rotation, as an operator of the mesh does it.
	start := time.Now()
	patch := client.MergeFrom(issuer.DeepCopy())
	must(t, unstructured.SetNestedField(issuer.Object, newCA.SecretName, "spec", "ca", "secretName"))
	must(t, env.Client.Patch(ctx, issuer, patch))
	renew(t, canary)
	bundled := waitBundle(t, withBundle.ns, []*testcertmanager.CA{oldCA, newCA}, nil)
	t.Logf("canary renewed by the new CA; the bundle of %s holds both roots %v after the issuer switch", withBundle.ns, bundled.Sub(start).Round(time.Millisecond))
	withBundle.waitFiles(t, start, bundleVolume, "ledger", "client")
	time.Sleep(2 * withBundle.refresh) // every file_watcher has read the bundle

	renewedServer := time.Now()
	for _, m := range meshes {
		renew(t, rotationIdentity{ns: m.ns, sa: "ledger"})
		m.waitFiles(t, renewedServer, secretVolume, "ledger")
	}
	time.Sleep(2 * time.Second) // the server on the new CA, the client still on the old one
	renewingClients := time.Now()
	for _, m := range meshes {
		renew(t, rotationIdentity{ns: m.ns, sa: "client"})
	}
	renewedAll := time.Now()
	// Every identity Secret now carries the new root: the old one is retained, then dropped.
	retained := waitBundle(t, withBundle.ns, []*testcertmanager.CA{oldCA, newCA}, oldCA)
	for _, m := range meshes {
		m.waitFiles(t, renewingClients, secretVolume, "client")
	}
	time.Sleep(2 * withBundle.refresh) // calls on the new certificates
	for _, m := range meshes {
		m.load.stop()
	}
	dropped := waitBundle(t, withBundle.ns, []*testcertmanager.CA{newCA}, nil)
	t.Logf("the old root left the bundle %v after the last Secret lost it (retention %v; seen retained at +%v)",
		dropped.Sub(renewedAll).Round(time.Millisecond), rotationRetention, retained.Sub(renewedAll).Round(time.Millisecond))
	if dropped.Sub(renewedAll) < rotationRetention-time.Second {
		t.Errorf("the old root was dropped %v after the last renewal, before the retention (%v)", dropped.Sub(renewedAll), rotationRetention)
	}
	// Envoy's bundle: both roots during the rotation, the old one retained as long as the
	// ConfigMaps retain it, then dropped for good.
	testmesh.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if at, _ := sds.droppedAt(oldCA); at.IsZero() {
			return fmt.Errorf("the SDS trust bundle still holds the old root")
		}
		return nil
	})
	sdsDropped, back := sds.droppedAt(oldCA)
	t.Logf("the old root left the SDS trust bundle %v after the last Secret lost it (%v after the ConfigMap's)",
		sdsDropped.Sub(renewedAll).Round(time.Millisecond), sdsDropped.Sub(dropped).Round(time.Millisecond))
	if sdsDropped.Sub(renewedAll) < rotationRetention-time.Second {
		t.Errorf("the SDS trust bundle dropped the old root %v after the last renewal, before the retention (%v)", sdsDropped.Sub(renewedAll), rotationRetention)
	}
	if back {
		t.Error("the SDS trust bundle held the old root again after dropping it")
	}
	if !sds.heldBoth(oldCA, newCA) {
		t.Error("the SDS trust bundle never held both roots")
	}

	failed := map[string]int{}
	for _, m := range meshes {
		r := m.load.results()
		for _, c := range r {
			if c.err != nil {
				failed[m.ns]++
			}
		}
		t.Logf("%s (CA file: %s): %d calls from 1s before the issuer switch to %v after it, %d failed; longest pause between two calls %v",
			m.ns, m.caSource(), len(r), r[len(r)-1].done.Sub(start).Round(time.Millisecond), failed[m.ns], m.load.longestGap().Round(time.Millisecond))
		shown := 0
		for _, c := range r {
			if c.err != nil && shown < 2 {
				shown++
				t.Logf("  e.g. a %s call %v after the server's renewal was triggered: %v", c.kind, c.done.Sub(renewedServer).Round(time.Millisecond), c.err)
			}
		}
	}
	if failed[withBundle.ns] != 0 {
		t.Errorf("%d calls failed with the trust bundle; want 0", failed[withBundle.ns])
	}
	if failed[perSecret.ns] == 0 {
		t.Errorf("no call failed with each Secret's own ca.crt: the rotation did not exercise the trust of the other side's new CA")
	}
}

// rotationRetention is the operator's --trust-bundle-retention in this package (TestMain).
const rotationRetention = 3 * time.Second

func createCA(t *testing.T, name string) *testcertmanager.CA {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ca, err := cm.CreateCA(ctx, name)
	must(t, err)
	return ca
}

// rotationIdentity is a service account's identity, issued by Sluice (Certificate and Secret
// sluice-identity-<sa>).
type rotationIdentity struct{ ns, sa string }

func (id rotationIdentity) secretKey() types.NamespacedName {
	return types.NamespacedName{Namespace: id.ns, Name: zerotrust.CertificateName(id.sa)}
}

// renew has cert-manager issue the identity again, as cmctl renew does.
func renew(t *testing.T, id rotationIdentity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := cm.Renew(ctx, id.ns, id.secretKey().Name)
	must(t, err)
}

// waitSecretRoot waits until the identity's Secret is issued by ca.
func waitSecretRoot(t *testing.T, id rotationIdentity, ca *testcertmanager.CA) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	testmesh.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if err := env.Client.Get(t.Context(), id.secretKey(), s); err != nil {
			return err
		}
		if !bytes.Equal(bytes.TrimSpace(s.Data["ca.crt"]), bytes.TrimSpace(ca.Bundle)) {
			return fmt.Errorf("Secret %s is not issued by %s yet", id.secretKey(), ca.IssuerName)
		}
		return nil
	})
	return s
}

// waitBundle waits until the namespace's trust bundle holds exactly the roots (and retains
// retained, when set), and returns when it saw that.
func waitBundle(t *testing.T, ns string, roots []*testcertmanager.CA, retained *testcertmanager.CA) time.Time {
	t.Helper()
	testmesh.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		cmap := &corev1.ConfigMap{}
		if err := env.Client.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: zerotrust.TrustBundleName}, cmap); err != nil {
			return err
		}
		b := zerotrust.TrustBundleOf(cmap)
		if len(b.Roots) != len(roots) {
			return fmt.Errorf("the bundle of %s holds %d roots, want %d", ns, len(b.Roots), len(roots))
		}
		for _, ca := range roots {
			if !zerotrust.Trusts(b, ca.Bundle) {
				return fmt.Errorf("the bundle of %s lacks %s", ns, ca.IssuerName)
			}
		}
		if retained != nil {
			if _, ok := b.RetainedUntil[zerotrust.Fingerprint(retained.Certificate.Raw)]; !ok {
				return fmt.Errorf("the bundle of %s does not retain %s: %v", ns, retained.IssuerName, cmap.Annotations)
			}
		}
		return nil
	})
	return time.Now()
}

// rotationMesh is a namespace with a STRICT ZeroTrust on the rotating issuer, a ledger server and a
// client, each with the files a kubelet would mount and keep up to date: its identity Secret
// (tls.crt, tls.key, ca.crt) and its namespace's trust bundle (ca.crt). useBundle says which ca.crt
// the workloads' file_watcher reads.
type rotationMesh struct {
	*mesh
	useBundle bool
	refresh   time.Duration
	volumes   map[string]*volume // by service account
	load      *load
}

func newRotationMesh(t *testing.T, ns, podIP string, useBundle bool) *rotationMesh {
	t.Helper()
	ctx := t.Context()
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, env.Client.Create(ctx, &meshv1alpha1.ZeroTrust{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mesh"},
		Spec: meshv1alpha1.ZeroTrustSpec{
			MTLS: meshv1alpha1.MutualTLS{Mode: meshv1alpha1.MTLSStrict},
			Identity: &meshv1alpha1.Identity{TrustDomain: rotationTrustDomain,
				IssuerRef: meshv1alpha1.IssuerRef{Kind: "ClusterIssuer", Name: "rotating-ca"}},
		},
	}))
	m := &rotationMesh{mesh: &mesh{ns: ns}, useBundle: useBundle, refresh: time.Second, volumes: map[string]*volume{}}
	createPod(t, ns, "client-0", "client")
	m.clientFiles = m.mount(t, rotationIdentity{ns, "client"})
	createPod(t, ns, "ledger-0", "ledger")
	m.serverFiles = m.mount(t, rotationIdentity{ns, "ledger"})
	m.server = startServer(t, ns, "ledger-0", podIP, m.serverFiles)
	createService(t, ns, "ledger", m.server)
	start := time.Now()
	m.server.waitMode(t, connectivity.ServingModeServing, 30*time.Second)
	t.Logf("%s: server SERVING %v after its EndpointSlice", ns, time.Since(start).Round(time.Millisecond))
	return m
}

func (m *rotationMesh) caSource() string {
	if m.useBundle {
		return "the trust bundle"
	}
	return "the Secret's ca.crt"
}

// files are the certificate files of a workload whose volumes are under dir.
func (m *rotationMesh) files(dir string) testmesh.CertificateFiles {
	f := testmesh.CertificateFiles{
		Cert: filepath.Join(dir, "identity", "tls.crt"), Key: filepath.Join(dir, "identity", "tls.key"),
		CA: filepath.Join(dir, "identity", "ca.crt"), Refresh: m.refresh,
	}
	if m.useBundle {
		f.CA = filepath.Join(dir, "trust-bundle", zerotrust.TrustBundleKey)
	}
	return f
}

// mount waits for the identity's volumes, then follows them, and returns its files.
func (m *rotationMesh) mount(t *testing.T, id rotationIdentity) testmesh.CertificateFiles {
	t.Helper()
	dir := t.TempDir()
	v := m.follow(t, id, dir)
	m.volumes[id.sa] = v
	testmesh.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if !v.written(secretVolume, time.Time{}) || !v.written(bundleVolume, time.Time{}) {
			return fmt.Errorf("no identity Secret and trust bundle for %s/%s yet", id.ns, id.sa)
		}
		return nil
	})
	return m.files(dir)
}

// follow writes the identity Secret and the trust bundle into dir/identity and dir/trust-bundle
// as a kubelet updates a pod's volumes, until the test ends.
func (m *rotationMesh) follow(t *testing.T, id rotationIdentity, dir string) *volume {
	v := &volume{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		var secretVersion, bundleVersion string
		for ctx.Err() == nil {
			s := &corev1.Secret{}
			err := env.Client.Get(ctx, id.secretKey(), s)
			if err == nil && len(s.Data[corev1.TLSCertKey]) > 0 && s.ResourceVersion != secretVersion {
				if err := writeVolume(filepath.Join(dir, "identity"), s.Data); err != nil {
					t.Errorf("writing the identity volume: %v", err)
					return
				}
				secretVersion = s.ResourceVersion
				v.wrote(secretVolume)
			}
			b := &corev1.ConfigMap{}
			err = env.Client.Get(ctx, types.NamespacedName{Namespace: id.ns, Name: zerotrust.TrustBundleName}, b)
			if err == nil && b.ResourceVersion != bundleVersion {
				data := map[string][]byte{zerotrust.TrustBundleKey: []byte(b.Data[zerotrust.TrustBundleKey])}
				if err := writeVolume(filepath.Join(dir, "trust-bundle"), data); err != nil {
					t.Errorf("writing the trust bundle volume: %v", err)
					return
				}
				bundleVersion = b.ResourceVersion
				v.wrote(bundleVolume)
			} else if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				t.Logf("reading the trust bundle: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return v
}

// waitFiles waits until the volume (secretVolume or bundleVolume) of the service accounts'
// workloads was written after since.
func (m *rotationMesh) waitFiles(t *testing.T, since time.Time, which string, serviceAccounts ...string) {
	t.Helper()
	testmesh.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, sa := range serviceAccounts {
			if !m.volumes[sa].written(which, since) {
				return fmt.Errorf("the %s volume of %s/%s was not written since %v", which, m.ns, sa, since.Format(time.StampMilli))
			}
		}
		return nil
	})
}

func (m *rotationMesh) startLoad(t *testing.T) {
	t.Helper()
	long, err := m.dial()
	must(t, err)
	t.Cleanup(func() { _ = long.Close() })
	warm, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	_, err = testgrpc.NewTestServiceClient(long).UnaryCall(warm, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	cancel()
	must(t, err)
	m.load = startLoad(m.mesh, long)
}

// A workload's two volumes.
const (
	secretVolume = "identity Secret"
	bundleVolume = "trust bundle"
)

// volume is when a workload's volumes were last written.
type volume struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (v *volume) wrote(which string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.last == nil {
		v.last = map[string]time.Time{}
	}
	v.last[which] = time.Now()
}

// written says whether the volume was written after since.
func (v *volume) written(which string, since time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last[which].After(since)
}

// createPod creates a pod with its service account (an API object: nothing runs it).
func createPod(t *testing.T, ns, name, sa string) {
	t.Helper()
	err := env.Client.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	must(t, env.Client.Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": sa}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}))
}
