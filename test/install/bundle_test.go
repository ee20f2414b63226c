package install_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/repo"
)

// TestBundleObjectsAreValid applies (server-side dry run) what OLM creates from the committed
// bundle: the CRDs, the Deployment of the CSV's install strategy (its pod admitted as restricted),
// roles with its permissions, and the other manifests, in the install's namespace. The bundle's Deployment differs from
// config/default's (no cert-manager webhook certificate), so it is checked on its own.
func TestBundleObjectsAreValid(t *testing.T) {
	needAPIServer(t)
	ensureNamespace(t)
	files, err := filepath.Glob(filepath.Join(repo.Root(), "bundle", "manifests", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bundle manifests (%v)", err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, obj := range decoded {
			if obj.GetKind() == "ClusterServiceVersion" {
				objs = append(objs, installStrategy(t, obj)...)
				continue
			}
			objs = append(objs, obj)
		}
	}
	warnings := &warningLog{}
	c := clientWithWarnings(t, warnings)
	for _, obj := range objs {
		if namespaced, err := c.IsObjectNamespaced(obj); err != nil {
			t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
		} else if namespaced {
			obj.SetNamespace(installNamespace)
		}
		if err := c.Apply(context.Background(), applyConfig(obj), fieldOwner, forceOwnership, client.DryRunAll); err != nil {
			t.Errorf("the API server refuses the bundle's %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		if obj.GetKind() == "Deployment" {
			if err := admitPod(typed[appsv1.Deployment](t, obj).Spec.Template); err != nil {
				t.Errorf("the bundle's manager pod is refused in %s (restricted): %v", installNamespace, err)
			}
		}
	}
	for _, w := range warnings.list() {
		t.Errorf("the API server warned: %s", w)
	}
}

// installStrategy is what OLM makes of a CSV's deployment install strategy: its Deployments, and
// a ClusterRole per permission set (a ClusterRole, so both kinds of rules are checked alike).
func installStrategy(t *testing.T, csv *unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	spec, _, _ := unstructured.NestedMap(csv.Object, "spec", "install", "spec")
	var objs []*unstructured.Unstructured
	deployments, _, _ := unstructured.NestedSlice(spec, "deployments")
	for _, d := range deployments {
		d := d.(map[string]any)
		obj := &unstructured.Unstructured{Object: map[string]any{"spec": d["spec"]}}
		obj.SetAPIVersion("apps/v1")
		obj.SetKind("Deployment")
		obj.SetName(d["name"].(string))
		objs = append(objs, obj)
	}
	for _, field := range []string{"permissions", "clusterPermissions"} {
		perms, _, _ := unstructured.NestedSlice(spec, field)
		for _, p := range perms {
			obj := &unstructured.Unstructured{Object: map[string]any{"rules": p.(map[string]any)["rules"]}}
			obj.SetAPIVersion("rbac.authorization.k8s.io/v1")
			obj.SetKind("ClusterRole")
			obj.SetName("bundle-" + field)
			objs = append(objs, obj)
		}
	}
	if len(objs) == 0 {
		t.Fatal("the CSV's install strategy has no Deployment")
	}
	return objs
}
