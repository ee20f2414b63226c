package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// WriteIdentity waits for the identity Secret of a service account and writes its certificate,
// key and CA to dir, for gRPC's file_watcher certificate provider.
func (s *Sandbox) WriteIdentity(ctx context.Context, namespace, serviceAccount, dir string) (*testmesh.CertificateFiles, error) {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	name := zerotrust.CertificateName(serviceAccount)
	secret := &corev1.Secret{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret)
		if err == nil && len(secret.Data["tls.crt"]) > 0 && len(secret.Data["tls.key"]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("it has no certificate yet")
			}
			return nil, fmt.Errorf("no identity Secret %s/%s after 30s (is cert-manager issuing it?): %w", namespace, name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := &testmesh.CertificateFiles{
		Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt"),
	}
	for path, key := range map[string]string{files.Cert: "tls.crt", files.Key: "tls.key", files.CA: "ca.crt"} {
		if err := os.WriteFile(path, secret.Data[key], 0o600); err != nil {
			return nil, err
		}
	}
	return files, nil
}
