package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// root is the repository's top directory, seen from this package.
const root = "../.."

var rendered = sync.OnceValues(func() ([]*unstructured.Unstructured, error) { return Render(root) })

func render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := rendered()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// committedOptions are the version and image of the committed bundle, read from its CSV.
func committedOptions(t *testing.T) Options {
	t.Helper()
	csv := readObject(t, filepath.Join(root, BundleDir, "manifests", PackageName+".clusterserviceversion.yaml"))
	version, _, _ := unstructured.NestedString(csv.Object, "spec", "version")
	return Options{Version: version, Image: csv.GetAnnotations()["containerImage"]}
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: want one object, got %d (%v)", path, len(objs), err)
	}
	return objs[0]
}

func build(t *testing.T, objs []*unstructured.Unstructured, opts Options) Files {
	t.Helper()
	files, _, err := Build(objs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCommittedBundleIsCurrent regenerates the committed bundle from config/ and compares.
func TestCommittedBundleIsCurrent(t *testing.T) {
	opts := committedOptions(t)
	files := build(t, render(t), opts)
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing (%v): run `make bundle VERSION=%s` and commit it", p, err, opts.Version)
		}
	}
	for _, dir := range []string{"manifests", "metadata"} {
		entries, err := os.ReadDir(filepath.Join(root, BundleDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if p := BundleDir + "/" + dir + "/" + e.Name(); files[p] == nil {
				t.Errorf("%s is no longer generated: run `make bundle VERSION=%s`", p, opts.Version)
			}
		}
	}
}

// TestBuildIsDeterministic renders and builds twice: the same bytes each time (map order,
// kustomize's output order and the samples' order must not leak into the files).
func TestBuildIsDeterministic(t *testing.T) {
	opts := Options{Version: "1.2.3"}
	first := build(t, render(t), opts)
	again, err := Render(root)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		second := build(t, again, opts)
		if !reflect.DeepEqual(first, second) {
			t.Fatal("two builds of the same config differ")
		}
	}
}

// TestBundleValidatesClean runs the validators of `make bundle-validate` on the committed bundle.
func TestBundleValidatesClean(t *testing.T) {
	report, err := Validate(filepath.Join(root, BundleDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(report.Errors, report.Warnings...) {
		t.Error(e)
	}
}

// TestValidatorsCatchABrokenCSV shows the validators run: a bundle whose CSV has an invalid
// minKubeVersion and no icon fails.
func TestValidatorsCatchABrokenCSV(t *testing.T) {
	files := build(t, render(t), Options{Version: "1.2.3"})
	csvPath := BundleDir + "/manifests/" + PackageName + ".clusterserviceversion.yaml"
	csv := string(files[csvPath])
	csv = strings.Replace(csv, "minKubeVersion: 1.30.0", "minKubeVersion: next-year", 1)
	files[csvPath] = []byte(csv)
	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	report, err := Validate(filepath.Join(dir, BundleDir))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(report.Errors, func(e string) bool { return strings.Contains(strings.ToLower(e), "minkubeversion") }) {
		t.Errorf("want an error about minKubeVersion, got errors %q warnings %q", report.Errors, report.Warnings)
	}
}

// TestOwnedCRDsEqualConfigCRD: the bundle's CRDs are config/crd's (name, annotations and the
// whole spec; config/default adds only its part-of label), and the CSV owns exactly them.
func TestOwnedCRDsEqualConfigCRD(t *testing.T) {
	sources, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	var want []string
	for _, src := range sources {
		crd := readObject(t, src)
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		inBundle := readObject(t, filepath.Join(root, BundleDir, "manifests", group+"_"+plural+".yaml"))
		if crd.GetName() != inBundle.GetName() || !reflect.DeepEqual(crd.GetAnnotations(), inBundle.GetAnnotations()) ||
			!reflect.DeepEqual(crd.Object["spec"], inBundle.Object["spec"]) {
			t.Errorf("the bundle's %s differs from %s", crd.GetName(), src)
		}
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		version, _ := storageVersion(crd)
		want = append(want, crd.GetName()+" "+kind+" "+version)
	}
	csv := readObject(t, filepath.Join(root, BundleDir, "manifests", PackageName+".clusterserviceversion.yaml"))
	owned, _, _ := unstructured.NestedSlice(csv.Object, "spec", "customresourcedefinitions", "owned")
	var got []string
	for _, o := range owned {
		o := o.(map[string]any)
		got = append(got, o["name"].(string)+" "+o["kind"].(string)+" "+o["version"].(string))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the CSV owns %q; config/crd has %q", got, want)
	}
}

// TestOwnedCRDMismatchIsRefused: a CSV base that forgets a CRD, or names a field a CRD does not
// have, stops the build with a message naming it.
func TestOwnedCRDMismatchIsRefused(t *testing.T) {
	objs := render(t)
	tamper := func(edit func(owned []any) []any) error {
		var copied []*unstructured.Unstructured
		for _, obj := range objs {
			obj = obj.DeepCopy()
			if obj.GetKind() == "ClusterServiceVersion" {
				owned, _, _ := unstructured.NestedSlice(obj.Object, "spec", "customresourcedefinitions", "owned")
				if err := unstructured.SetNestedSlice(obj.Object, edit(owned), "spec", "customresourcedefinitions", "owned"); err != nil {
					t.Fatal(err)
				}
			}
			copied = append(copied, obj)
		}
		_, _, err := Build(copied, Options{Version: "1.2.3"})
		return err
	}
	err := tamper(func(owned []any) []any { return owned[1:] })
	if err == nil || !strings.Contains(err.Error(), "is not among the owned CRDs") {
		t.Errorf("a missing owned CRD: want an error naming it, got %v", err)
	}
	err = tamper(func(owned []any) []any {
		o := owned[0].(map[string]any)
		o["specDescriptors"] = []any{map[string]any{"path": "noSuchField", "displayName": "x"}}
		return owned
	})
	if err == nil || !strings.Contains(err.Error(), `"noSuchField" is no field of .spec`) {
		t.Errorf("a descriptor of a missing field: want an error naming it, got %v", err)
	}
}

// TestWebhooksBecomeDefinitions: every webhook of config/webhook is a webhookdefinition served by
// the manager's Deployment, and the Deployment keeps no cert-manager webhook Secret (OLM mounts
// its own certificate).
func TestWebhooksBecomeDefinitions(t *testing.T) {
	objs := render(t)
	files := build(t, objs, Options{Version: "1.2.3"})
	csv, err := Decode(files[BundleDir+"/manifests/"+PackageName+".clusterserviceversion.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	defs, _, _ := unstructured.NestedSlice(csv[0].Object, "spec", "webhookdefinitions")
	var names []string
	for _, d := range defs {
		names = append(names, d.(map[string]any)["generateName"].(string))
	}
	var want []string
	for _, obj := range objs {
		if strings.HasSuffix(obj.GetKind(), "WebhookConfiguration") {
			hooks, _, _ := unstructured.NestedSlice(obj.Object, "webhooks")
			for _, h := range hooks {
				want = append(want, h.(map[string]any)["name"].(string))
			}
		}
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("webhookdefinitions %q, want %q", names, want)
	}
	if strings.Contains(string(files[BundleDir+"/manifests/"+PackageName+".clusterserviceversion.yaml"]), "webhook-cert-dir") {
		t.Error("the bundle's Deployment still points the webhook server at cert-manager's Secret")
	}
}
