// Package injection_test checks pod injection through a real API server with the mutating
// webhook of config/webhook installed and served by the operator: pods come back with the
// sidecar (whose bootstrap is valid) or the proxyless files, a second pass changes nothing,
// opting out is honoured, bad annotations are refused by name, and an unreachable webhook does not
// block pods (failure policy Ignore).
package injection_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/webhooks/injection"
)

var (
	env  *testenv.Env
	kube client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the injection tests in -short mode")
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
	kube = env.Client
	opts := manager.Options{XDSAddr: "0", Namespace: "sluice-system"}
	env.ServeWebhooks(&opts)
	op, err := testmesh.StartOperator(env.Config, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer op.Stop()
	if err := waitForInjection(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// waitForInjection returns once the API server reaches the injector: a dry-run pod in an
// injected namespace comes back injected.
func waitForInjection() error {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "warm-up", Labels: map[string]string{injection.LabelInject: injection.ValueEnabled}}}
	if err := kube.Create(ctx, ns); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pod := simplePod(ns.Name, "warm-up")
		if err := kube.Create(ctx, pod, client.DryRunAll); err == nil && pod.Annotations[injection.AnnotationInjected] != "" {
			return nil
		}
	}
	return fmt.Errorf("no pod was injected within 30s")
}

// namespace creates a namespace of its own for the test, with labels.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	name = strings.TrimRight(name[:min(len(name), 63)], "-")
	if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func simplePod(namespace, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1"}}},
	}
}
