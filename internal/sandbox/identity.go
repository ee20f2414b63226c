package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// A pod's identity files are what a kubelet would mount from its identity Secret: the Secret the
// ZeroTrust identity controller has cert-manager issue for its service account.

// needsIdentity says whether a ZeroTrust in the namespace (or mesh-wide) asks for identities.
func (s *Sandbox) needsIdentity(ctx context.Context, namespace string) (bool, error) {
	var list meshv1alpha1.ZeroTrustList
	if err := s.Client.List(ctx, &list); err != nil {
		return false, err
	}
	for _, zt := range list.Items {
		if zt.Spec.Identity != nil && zt.Spec.MTLS.Mode != meshv1alpha1.MTLSDisable &&
			(zt.Namespace == namespace || zt.Namespace == OperatorNamespace) {
			return true, nil
		}
	}
	return false, nil
}

// identityRefresh is how often the workloads' gRPC reads their identity files again
// (file_watcher's refresh_interval): a renewal is in use within it.
const identityRefresh = time.Second

// MountIdentity waits for the identity Secret of a service account and for its namespace's trust
// bundle to trust the Secret's CA, and writes the certificate and key (dir/tls.crt, dir/tls.key:
// the Secret's volume) and the bundle (dir/trust-bundle/ca.crt: the ConfigMap's volume), for
// gRPC's file_watcher certificate provider. It writes them again whenever the Secret or the
// ConfigMap changes (a renewal, a CA rotation) until stop is called or the sandbox stops.
func (s *Sandbox) MountIdentity(ctx context.Context, namespace, serviceAccount, dir string) (_ *testmesh.CertificateFiles, stop func(), err error) {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	name := zerotrust.CertificateName(serviceAccount)
	secret := &corev1.Secret{}
	bundle := &corev1.ConfigMap{}
	err = waitFor(ctx, 30*time.Second, func() error {
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
			return fmt.Errorf("no identity Secret %s/%s (is cert-manager issuing it?): %w", namespace, name, err)
		}
		if len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 {
			return fmt.Errorf("the identity Secret %s/%s has no certificate yet", namespace, name)
		}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: zerotrust.TrustBundleName}, bundle); err != nil {
			return fmt.Errorf("no trust bundle ConfigMap %s/%s: %w", namespace, zerotrust.TrustBundleName, err)
		}
		if !zerotrust.Trusts(zerotrust.TrustBundleOf(bundle), secret.Data["ca.crt"]) {
			return fmt.Errorf("the trust bundle %s/%s does not hold the CA of Secret %s yet", namespace, zerotrust.TrustBundleName, name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	files := IdentityFiles(dir)
	following, stop := context.WithCancel(s.following)
	err = mount(s, following, secret, &corev1.SecretList{}, func(secret *corev1.Secret) error {
		return writeFiles(map[string][]byte{files.Cert: secret.Data[corev1.TLSCertKey], files.Key: secret.Data[corev1.TLSPrivateKeyKey]})
	})
	if err == nil {
		err = mount(s, following, bundle, &corev1.ConfigMapList{}, func(bundle *corev1.ConfigMap) error {
			return writeFiles(map[string][]byte{files.CA: []byte(bundle.Data[zerotrust.TrustBundleKey])})
		})
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return &files, stop, nil
}

// IdentityFiles are where MountIdentity writes a workload's identity in dir, read again every
// identityRefresh.
func IdentityFiles(dir string) testmesh.CertificateFiles {
	return testmesh.CertificateFiles{
		Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"),
		CA: filepath.Join(dir, "trust-bundle", zerotrust.TrustBundleKey), Refresh: identityRefresh,
	}
}

// waitFor calls check every 100ms until it returns nil, and returns its last error after timeout.
func waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
