package v1alpha1_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Every field of every CRD carries a description: it is what `kubectl explain` and OperatorHub show.
func TestEveryFieldIsDocumented(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want the 3 generated CRDs, found %v (%v); run make manifests", files, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, v := range crd.Spec.Versions {
			var undocumented []string
			collectUndocumented(v.Schema.OpenAPIV3Schema, crd.Spec.Names.Kind, &undocumented)
			sort.Strings(undocumented)
			for _, path := range undocumented {
				t.Errorf("%s %s has no description", v.Name, path)
			}
		}
	}
}

func collectUndocumented(s *apiextensionsv1.JSONSchemaProps, path string, out *[]string) {
	if s == nil {
		return
	}
	for name, prop := range s.Properties {
		p := path + "." + name
		// apiVersion, kind and metadata are documented by Kubernetes itself.
		if prop.Description == "" && name != "metadata" {
			*out = append(*out, p)
		}
		collectUndocumented(&prop, p, out)
	}
	if s.Items != nil {
		collectUndocumented(s.Items.Schema, path+"[]", out)
	}
}
