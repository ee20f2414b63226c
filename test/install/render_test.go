package install_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/repo"
)

// installNamespace is where config/default installs the operator.
const installNamespace = "sluice-system"

// managerServiceAccount is the operator's identity in the cluster, as config/default names it.
const managerServiceAccount = "sluice-controller-manager"

var (
	fieldOwner     = client.FieldOwner("sluice-install-test")
	forceOwnership = client.ForceOwnership
)

// render runs `kustomize build dir` (the kustomize pinned in hack/tools) and decodes its output.
func render(dir string) ([]*unstructured.Unstructured, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "tool", "-modfile=hack/tools/go.mod", "kustomize", "build", dir)
	cmd.Dir = repo.Root()
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w\n%s", dir, err, stderr.String())
	}
	return decode(out)
}

// decode splits a multi-document YAML stream into objects.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if string(bytes.TrimSpace(data)) == "null" {
			continue // an empty document
		}
		// Through JSON, so integers stay int64 as in objects read from the API server.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

// ofKind returns the rendered objects of a kind.
func ofKind(kind string) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for _, obj := range rendered {
		if obj.GetKind() == kind {
			objs = append(objs, obj)
		}
	}
	return objs
}

// find returns the rendered object of a kind, namespace and name, or fails the test.
func find(t *testing.T, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range ofKind(kind) {
		if obj.GetNamespace() == namespace && obj.GetName() == name {
			return obj
		}
	}
	t.Fatalf("config/default has no %s %s/%s", kind, namespace, name)
	return nil
}

// typed converts a rendered object into its Go type.
func typed[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return out
}

func applyConfig(obj *unstructured.Unstructured) runtime.ApplyConfiguration {
	return client.ApplyConfigurationFromUnstructured(obj)
}
