package envoy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/golden"
	"github.com/sluice-mesh/sluice/xds/ir"
)

// goldenOptions are the Options of the inputs that need more than the defaults.
var goldenOptions = map[string]Options{
	"telemetry": {AccessLog: true, TracingCollector: "otel-collector.observability:4317"},
}

// goldenInputs lists testdata/*.in.yaml by case name.
func goldenInputs(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/*.in.yaml")
	}
	out := map[string]string{}
	for _, p := range paths {
		out[strings.TrimSuffix(filepath.Base(p), ".in.yaml")] = p
	}
	return out
}

func readIR(t *testing.T, path string) *ir.IR {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := &ir.IR{}
	if err := yaml.UnmarshalStrict(b, in); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return in
}

func translateGolden(t *testing.T, name, path string) *Snapshot {
	t.Helper()
	s, err := Translate(readIR(t, path), goldenOptions[name])
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return s
}

func TestGolden(t *testing.T) {
	for name, path := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			s := translateGolden(t, name, path)
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			got, err := s.YAML()
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".out.yaml"), got)
		})
	}
}

func TestBootstrapGolden(t *testing.T) {
	b, err := Bootstrap(testBootstrapOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		hcms, err := listenerHCMs(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hcms {
			if err := h.hcm.ValidateAll(); err != nil {
				t.Errorf("listener %q %s: %v", l.GetName(), h.where, err)
			}
		}
	}
	got, err := ProtoYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "bootstrap.out.yaml"), got)
}

func testBootstrapOptions() BootstrapOptions {
	return BootstrapOptions{
		XDSAddress:     "sluice-xds.sluice-system.svc",
		XDSPort:        15010,
		PodIP:          "10.244.1.5",
		PodName:        "checkout-7d9f8-abcde",
		Namespace:      "shop",
		Workload:       "checkout",
		Version:        "v1",
		ServiceAccount: "checkout",
	}
}

// firstDiff shows the first differing line with some context.
func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant: %s\ngot:  %s", i+1, wl, gl)
		}
	}
	return "(only line endings differ)"
}
