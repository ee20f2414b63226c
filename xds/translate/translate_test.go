package translate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/golden"
	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/xds/ir"
	"github.com/sluice-mesh/sluice/xds/resources"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// output is what a golden file holds: the IR and the problems.
type output struct {
	IR       *ir.IR             `json:"ir"`
	Problems translate.Problems `json:"problems,omitempty"`
}

func TestGolden(t *testing.T) {
	for _, in := range golden.Inputs(t) {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			res := load(t, in)
			tree, problems := translate.Translate(res)
			got, err := yaml.Marshal(output{IR: tree, Problems: problems})
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, golden.OutputPath(in), got)

			// Pure and deterministic: the same input, reversed, gives the same output.
			again, _ := yaml.Marshal(func() output {
				tree, problems := translate.Translate(reversed(res))
				return output{IR: tree, Problems: problems}
			}())
			if string(again) != string(got) {
				t.Error("the output depends on the order of the input objects")
			}
		})
	}
}

func load(t *testing.T, path string) *resources.Resources {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := resources.FromYAML(manager.NewScheme(), data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return res
}

func reversed(r *resources.Resources) *resources.Resources {
	return &resources.Resources{
		Services:        reverse(r.Services),
		EndpointSlices:  reverse(r.EndpointSlices),
		Pods:            reverse(r.Pods),
		TrafficPolicies: reverse(r.TrafficPolicies),
		Rollouts:        reverse(r.Rollouts),
		ZeroTrusts:      reverse(r.ZeroTrusts),
		Secrets:         reverse(r.Secrets),
		TrustBundles:    reverse(r.TrustBundles),

		OperatorNamespace: r.OperatorNamespace,
	}
}

func reverse[T any](in []T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[len(in)-1-i] = v
	}
	return out
}
