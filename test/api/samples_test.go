package api_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var sampleFiles = []string{
	"mesh_v1alpha1_rollout.yaml",
	"mesh_v1alpha1_trafficpolicy.yaml",
	"mesh_v1alpha1_zerotrust.yaml",
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

// applySamples creates every sample in its namespace (once).
func applySamples(t *testing.T) {
	t.Helper()
	for _, file := range sampleFiles {
		obj := sample(t, file)
		ensureNamespace(t, obj.GetNamespace())
		if err := env.Client.Create(context.Background(), obj); err != nil && !isAlreadyExists(err) {
			t.Fatalf("%s was rejected: %v", file, err)
		}
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	applySamples(t)
	for _, file := range sampleFiles {
		want := sample(t, file)
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(want.GroupVersionKind())
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(want), got); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// The API server must keep every field of the sample: nothing pruned as unknown.
		if missing := missingFields(want.Object["spec"], got.Object["spec"], "spec"); len(missing) > 0 {
			t.Errorf("%s: the API server dropped %s", file, strings.Join(missing, ", "))
		}
	}
}

// missingFields lists the paths present in want but absent from got.
func missingFields(want, got any, path string) []string {
	var missing []string
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				missing = append(missing, path+"."+k)
				continue
			}
			missing = append(missing, missingFields(v, gv, path+"."+k)...)
		}
	case []any:
		g, _ := got.([]any)
		if len(g) != len(w) {
			return []string{path}
		}
		for i := range w {
			missing = append(missing, missingFields(w[i], g[i], path)...)
		}
	}
	return missing
}
