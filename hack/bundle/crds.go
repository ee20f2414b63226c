package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// checkOwnedCRDs makes sure the CSV's owned CRDs are exactly config/crd's (name, kind and storage
// version) and that every spec and status descriptor names a field of the CRD's schema.
func checkOwnedCRDs(csv *unstructured.Unstructured, crds []*unstructured.Unstructured) error {
	const base = "config/manifests/bases/sluice.clusterserviceversion.yaml"
	owned, _, _ := unstructured.NestedSlice(csv.Object, "spec", "customresourcedefinitions", "owned")
	byName := map[string]map[string]any{}
	for _, o := range owned {
		o := o.(map[string]any)
		byName[fmt.Sprint(o["name"])] = o
	}
	var problems []string
	for _, crd := range crds {
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		version, schema := storageVersion(crd)
		o, ok := byName[crd.GetName()]
		if !ok {
			problems = append(problems, fmt.Sprintf("CRD %s is not among the owned CRDs: add it, with a description and descriptors", crd.GetName()))
			continue
		}
		delete(byName, crd.GetName())
		if o["kind"] != kind || o["version"] != version {
			problems = append(problems, fmt.Sprintf("owned CRD %s says %v %v; config/crd says %s %s", crd.GetName(), o["kind"], o["version"], kind, version))
		}
		if d, _ := o["description"].(string); d == "" {
			problems = append(problems, fmt.Sprintf("owned CRD %s has no description", crd.GetName()))
		}
		for _, part := range []string{"spec", "status"} {
			descriptors, _, _ := unstructured.NestedSlice(o, part+"Descriptors")
			sub, _, _ := unstructured.NestedMap(schema, "properties", part)
			for _, d := range descriptors {
				p := fmt.Sprint(d.(map[string]any)["path"])
				if !schemaHas(sub, p) {
					problems = append(problems, fmt.Sprintf("owned CRD %s: %sDescriptor %q is no field of .%s", crd.GetName(), part, p, part))
				}
			}
		}
	}
	for name := range byName {
		problems = append(problems, fmt.Sprintf("owned CRD %s is not in config/crd: remove it", name))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%s:\n  %s", base, strings.Join(problems, "\n  "))
	}
	return nil
}

// storageVersion is the CRD's stored version and its OpenAPI schema.
func storageVersion(crd *unstructured.Unstructured) (string, map[string]any) {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		v := v.(map[string]any)
		if v["storage"] == true {
			schema, _, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema")
			return fmt.Sprint(v["name"]), schema
		}
	}
	return "", nil
}

var index = regexp.MustCompile(`\[\d+\]`)

// schemaHas says whether a descriptor path (a.b, a[0].b) names a field of schema.
func schemaHas(schema map[string]any, path string) bool {
	node := schema
	for _, field := range strings.Split(index.ReplaceAllString(path, ""), ".") {
		for node["type"] == "array" {
			node, _ = node["items"].(map[string]any)
		}
		props, _ := node["properties"].(map[string]any)
		next, ok := props[field].(map[string]any)
		if !ok {
			return false
		}
		node = next
	}
	return true
}
