package rolloutview

import (
	"os"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/golden"
)

// fixture is a View as a testdata/*.in.yaml file writes it.
type fixture struct {
	Now     time.Time             `json:"now"`
	Color   bool                  `json:"color"`
	Rollout *meshv1alpha1.Rollout `json:"rollout"`
	Stable  *Workload             `json:"stable"`
	Canary  *Workload             `json:"canary"`
	Events  []Event               `json:"events"`
}

func TestRenderGolden(t *testing.T) {
	for _, in := range golden.Inputs(t) {
		t.Run(strings.TrimSuffix(in, ".in.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var f fixture
			if err := yaml.UnmarshalStrict(data, &f); err != nil {
				t.Fatal(err)
			}
			v := View{Rollout: f.Rollout, Stable: f.Stable, Canary: f.Canary, Events: f.Events, Now: f.Now}
			golden.Check(t, golden.OutputPath(in), []byte(String(v, Options{Color: f.Color})))
		})
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1499 * time.Millisecond: "1s", 59 * time.Second: "59s", 61 * time.Second: "1m01s",
		2*time.Hour + 5*time.Minute: "2h05m", 76 * time.Hour: "3d4h",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%s) = %q, want %q", d, got, want)
		}
	}
}
