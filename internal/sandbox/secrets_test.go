package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// A Secret written as files is written again when it changes, as cert-manager's renewals change
// the xDS server's and the client's certificates; each file is replaced whole.
func TestMountedSecretFollowsChanges(t *testing.T) {
	s, ctx := followingSandbox(t)

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "server-tls"},
		Data: map[string][]byte{corev1.TLSCertKey: []byte("first")}}
	if err := s.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tls", corev1.TLSCertKey)
	write := func(secret *corev1.Secret) error {
		return writeFiles(map[string][]byte{path: secret.Data[corev1.TLSCertKey]})
	}
	if err := s.mountSecret(secret, write); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "first" {
		t.Fatalf("mounted: %q, %v; want %q", got, err, "first")
	}

	secret.Data[corev1.TLSCertKey] = []byte("renewed")
	if err := s.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	testmesh.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, []byte("renewed")) {
			return fmt.Errorf("the file is %q after the Secret changed, want %q (%w)", got, "renewed", err)
		}
		return nil
	})
	if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want only %s: no temporary file left", entries, err, corev1.TLSCertKey)
	}
}

// A ConfigMap is followed the same way, until its mount is stopped (its pod stopped): then the
// file keeps what it had.
func TestMountedConfigMapStopsFollowing(t *testing.T) {
	s, ctx := followingSandbox(t)

	bundle := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sluice-trust-bundle"},
		Data: map[string]string{"ca.crt": "first"}}
	if err := s.Client.Create(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust-bundle", "ca.crt")
	podCtx, stopPod := context.WithCancel(s.following)
	err := mount(s, podCtx, bundle, &corev1.ConfigMapList{}, func(bundle *corev1.ConfigMap) error {
		return writeFiles(map[string][]byte{path: []byte(bundle.Data["ca.crt"])})
	})
	if err != nil {
		t.Fatal(err)
	}
	update := func(data string) {
		t.Helper()
		bundle.Data["ca.crt"] = data
		if err := s.Client.Update(ctx, bundle); err != nil {
			t.Fatal(err)
		}
	}
	update("rotated")
	testmesh.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got, err := os.ReadFile(path); err != nil || string(got) != "rotated" {
			return fmt.Errorf("the file is %q after the ConfigMap changed, want %q (%w)", got, "rotated", err)
		}
		return nil
	})

	stopPod()
	update("after the pod stopped")
	time.Sleep(time.Second) // it was rewritten within 10ms above
	if got, err := os.ReadFile(path); err != nil || string(got) != "rotated" {
		t.Errorf("the file is %q (%v) after its mount stopped, want what it had: %q", got, err, "rotated")
	}
}

// followingSandbox is a Sandbox with only what following objects as files needs: a real API
// server and a watching client. ctx ends when the test does.
func followingSandbox(t *testing.T) (*Sandbox, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Kubernetes API server; skipped in -short mode")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	watcher, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	s := &Sandbox{opts: Options{Log: os.Stderr}, Client: env.Client, watcher: watcher, following: ctx, stopFollowing: cancel}
	t.Cleanup(s.stopFollowing)
	return s, ctx
}
