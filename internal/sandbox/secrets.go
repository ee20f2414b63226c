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
	return mount(s, s.following, secret, &corev1.SecretList{}, write)
}

// mount writes obj (a Secret or a ConfigMap) with write now, then follows it until ctx ends,
// writing it again whenever it changes, as a kubelet does with a pod's volumes. When ctx ends the
// files stay as they were last written.
func mount[T client.Object](s *Sandbox, ctx context.Context, obj T, list client.ObjectList, write func(T) error) error {
	if err := write(obj); err != nil {
		return err
	}
	go follow(s, ctx, obj.GetNamespace(), obj.GetName(), obj.GetResourceVersion(), list, write)
	return nil
}

// follow watches the object (again after a watch ends) and calls write for every version after
// seen.
func follow[T client.Object](s *Sandbox, ctx context.Context, namespace, name, seen string, list client.ObjectList, write func(T) error) {
	for ctx.Err() == nil {
		w, err := s.watcher.Watch(ctx, list, client.InNamespace(namespace), client.MatchingFields{"metadata.name": name})
		if err != nil {
			fmt.Fprintf(s.opts.Log, "  volumes: watching %s/%s: %v\n", namespace, name, err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(T)
			if !ok || ev.Type == watch.Deleted || obj.GetResourceVersion() == seen {
				continue
			}
			if ctx.Err() != nil {
				break // stopped: the files keep what they had
			}
			if err := write(obj); err != nil {
				fmt.Fprintf(s.opts.Log, "  volumes: writing %s/%s: %v\n", namespace, name, err)
				continue
			}
			seen = obj.GetResourceVersion()
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
