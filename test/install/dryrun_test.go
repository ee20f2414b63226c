package install_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestEveryObjectIsValid applies every object of config/default and config/olm to the API server
// with a server-side dry run: schemas (the CRDs' included), defaulting, admission and field ownership
// all run; nothing is stored. A deprecation or unknown-field warning fails it too.
func TestEveryObjectIsValid(t *testing.T) {
	needAPIServer(t)
	ensureNamespace(t)
	warnings := &warningLog{}
	c := clientWithWarnings(t, warnings)
	for _, obj := range append(slices.Clone(rendered), olmExtras...) {
		t.Run(obj.GetKind()+"/"+obj.GetName(), func(t *testing.T) {
			err := c.Apply(context.Background(), applyConfig(obj.DeepCopy()), fieldOwner, forceOwnership, client.DryRunAll)
			if err != nil {
				t.Errorf("the API server refuses %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
		})
	}
	for _, w := range warnings.list() {
		t.Errorf("the API server warned: %s", w)
	}
}

// TestManagerPodIsRestricted creates (dry run) a pod from the manager's template in the install's
// namespace, which enforces the restricted Pod Security Standard; PodSecurity admission checks
// pods only, not Deployments. A copy without the security context must be refused, which shows
// the check runs.
func TestManagerPodIsRestricted(t *testing.T) {
	needAPIServer(t)
	ensureNamespace(t)
	deploy := typed[appsv1.Deployment](t, find(t, "Deployment", installNamespace, managerDeployment))
	if err := admitPod(deploy.Spec.Template); err != nil {
		t.Errorf("the manager's pod is refused in %s: %v", installNamespace, err)
	}
	loose := *deploy.Spec.Template.DeepCopy()
	loose.Spec.SecurityContext = nil
	loose.Spec.Containers[0].SecurityContext = nil
	if err := admitPod(loose); !apierrors.IsForbidden(err) {
		t.Errorf("a pod without a security context in %s: want Forbidden by PodSecurity, got %v", installNamespace, err)
	}
}

// podFrom is a pod of a template in the install's namespace.
func podFrom(template corev1.PodTemplateSpec) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: installNamespace, Name: "manager-restricted", Labels: template.Labels},
		Spec:       template.Spec,
	}
}

// admitPod creates (dry run) a pod of the template in the install's namespace, which enforces the
// restricted Pod Security Standard.
func admitPod(template corev1.PodTemplateSpec) error {
	return env.Client.Create(context.Background(), podFrom(template), client.DryRunAll)
}

// warningLog keeps the API server's warnings.
type warningLog struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, fmt.Sprintf("%d %s", code, text))
}

func (w *warningLog) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...)
}

func clientWithWarnings(t *testing.T, warnings *warningLog) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = warnings
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
