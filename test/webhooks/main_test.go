// Package webhooks_test checks the admission webhooks of Sluice's kinds through a real API server:
// the webhook configurations of config/webhook are installed (pointing at the operator's webhook
// server), invalid objects are refused with the message the user sees, warnings reach the client,
// the samples are admitted, and rotated serving certificates are picked up. cert-manager runs, with
// the samples' ClusterIssuer mesh-ca, so that issuer references are looked up for real.
package webhooks_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// operatorNamespace holds the mesh-wide ZeroTrust.
const operatorNamespace = "sluice-system"

var (
	env      *testenv.Env
	kube     client.Client
	warnings *testenv.Warnings
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the webhook tests in -short mode")
		return 0
	}
	testmesh.SetLogger()
	var err error
	env, err = testenv.StartWith(testenv.Options{
		WebhookConfigs: []string{filepath.Join(repo.Root(), "config", "webhook", "manifests.yaml")},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if kube, warnings, err = env.WarningClient(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cm, err := testcertmanager.New(ctx, env, testcertmanager.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cm.Stop() }()
	if _, err := cm.CreateCA(ctx, "mesh-ca"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := manager.Options{XDSAddr: "0", Namespace: operatorNamespace}
	env.ServeWebhooks(&opts)
	op, err := testmesh.StartOperator(env.Config, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer op.Stop()
	if err := waitForWebhooks(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// waitForWebhooks returns once the API server reaches the webhooks: a dry-run create passes.
func waitForWebhooks() error {
	ctx := context.Background()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return err
	}
	zt := &meshv1alpha1.ZeroTrust{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "probe"}}
	zt.Spec.MTLS.Mode = meshv1alpha1.MTLSDisable
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = kube.Create(ctx, zt.DeepCopy(), client.DryRunAll); err == nil {
			warnings.Take()
			return nil
		}
	}
	return fmt.Errorf("the webhooks did not answer within 30s: %w", err)
}

// namespace creates a namespace of its own for the test.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-")
	if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// create creates obj and fails the test when the API server refuses it; it returns the warnings.
func create(t *testing.T, obj client.Object) []string {
	t.Helper()
	warnings.Take()
	if err := kube.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	return warnings.Take()
}

// refused creates obj, expects the API server to refuse it as invalid, and returns its message.
func refused(t *testing.T, obj client.Object) string {
	t.Helper()
	err := kube.Create(context.Background(), obj)
	if err == nil {
		t.Fatalf("%T %s was admitted; want it refused", obj, obj.GetName())
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	return err.Error()
}
