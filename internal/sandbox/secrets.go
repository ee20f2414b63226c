package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/testcertmanager"
)

// The sandbox is the kubelet of the Secrets its processes use as files: it writes them, and
// writes them again when they change (a renewal), each file replaced atomically.

// issueCertificate creates a Certificate from the sandbox's CA ClusterIssuer with spec (secretName
// is name) and returns its Secret once cert-manager has issued it.
func (s *Sandbox) issueCertificate(ctx context.Context, namespace, name string, spec map[string]any) (*corev1.Secret, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := s.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	spec["secretName"] = name
	spec["issuerRef"] = s.ca.IssuerRef()
	crt := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	crt.SetGroupVersionKind(testcertmanager.CertificateGVK)
	crt.SetNamespace(namespace)
	crt.SetName(name)
	if err := s.Client.Create(ctx, crt); err != nil {
		return nil, fmt.Errorf("creating Certificate %s/%s: %w", namespace, name, err)
	}
	return s.CertManager.WaitCertificate(ctx, namespace, name)
}

// mountSecret writes secret with write now, then follows the Secret until the sandbox stops,
// writing it again whenever it changes.
func (s *Sandbox) mountSecret(secret *corev1.Secret, write func(*corev1.Secret) error) error {
	if err := write(secret); err != nil {
		return err
	}
	go s.followSecret(secret.Namespace, secret.Name, secret.ResourceVersion, write)
	return nil
}

// followSecret watches the Secret (again after a watch ends) and calls write for every version
// after seen.
func (s *Sandbox) followSecret(namespace, name, seen string, write func(*corev1.Secret) error) {
	ctx := s.following
	for ctx.Err() == nil {
		w, err := s.watcher.Watch(ctx, &corev1.SecretList{}, client.InNamespace(namespace),
			client.MatchingFields{"metadata.name": name})
		if err != nil {
			fmt.Fprintf(s.opts.Log, "  secrets: watching %s/%s: %v\n", namespace, name, err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range w.ResultChan() {
			secret, ok := ev.Object.(*corev1.Secret)
			if !ok || ev.Type == watch.Deleted || secret.ResourceVersion == seen {
				continue
			}
			if err := write(secret); err != nil {
				fmt.Fprintf(s.opts.Log, "  secrets: writing %s/%s: %v\n", namespace, name, err)
				continue
			}
			seen = secret.ResourceVersion
		}
		w.Stop()
	}
}

// writeFiles writes each file through a temporary file renamed over it, so a reader sees the old
// content or the new, never half of it.
func writeFiles(files map[string][]byte) error {
	for path, data := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}
