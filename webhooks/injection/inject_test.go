package injection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/golden"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

type injectCase struct {
	Namespace corev1.Namespace `json:"namespace"`
	Pod       corev1.Pod       `json:"pod"`
}

func readCase(t *testing.T, path string) injectCase {
	t.Helper()
	var c injectCase
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestInjectGolden injects each testdata/*.in.yaml pod, compares the result with its .out.yaml,
// checks that a second injection changes nothing and that a sidecar's bootstrap is valid.
func TestInjectGolden(t *testing.T) {
	for _, in := range golden.Inputs(t) {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			c := readCase(t, in)
			got, err := Inject(&c.Pod, &c.Namespace, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			out, err := yaml.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, golden.OutputPath(in), out)

			again, err := Inject(got, &c.Namespace, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, again) {
				t.Errorf("a second injection changed the pod:\n%s", cmp.Diff(got, again))
			}
			if got.Annotations[AnnotationInjected] != string(ModeEnvoy) {
				return
			}
			b, err := ProxyBootstrap(got, PodFields{Name: "checkout-7d9f8-abcde", Namespace: c.Namespace.Name, IP: "10.244.1.5"})
			if err != nil {
				t.Fatal(err)
			}
			secrets, err := ProxyFileSecrets(got)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoy.ValidateBootstrap(b, secrets...); err != nil {
				t.Errorf("ValidateBootstrap: %v", err)
			}
			if id := b.GetNode().GetId(); id != "envoy~10.244.1.5~checkout-7d9f8-abcde.shop~shop.svc.cluster.local" {
				t.Errorf("node id %q: the pod's name and IP were not filled in", id)
			}
		})
	}
}

func TestInjectRejectsBadAnnotations(t *testing.T) {
	ns := &corev1.Namespace{}
	ns.Name = "shop"
	for annotation, value := range map[string]string{
		AnnotationInject:               "yes",
		AnnotationMode:                 "istio",
		AnnotationExcludeInboundPorts:  "http",
		AnnotationExcludeOutboundPorts: "70000",
		AnnotationExcludeOutboundCIDRs: "fd00::/8",
	} {
		pod := &corev1.Pod{}
		pod.Annotations = map[string]string{AnnotationInject: "true", annotation: value}
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
		_, err := Inject(pod, ns, DefaultConfig())
		if err == nil || !strings.Contains(err.Error(), annotation) {
			t.Errorf("%s=%q: error %v, want one naming the annotation", annotation, value, err)
		}
	}
}

func TestConfigValidateNamesTheFlag(t *testing.T) {
	for flagName, mutate := range map[string]func(*Config){
		"--xds-service":  func(c *Config) { c.XDSService = "sluice-xds" },
		"--proxy-image":  func(c *Config) { c.ProxyImage = "" },
		"--proxy-memory": func(c *Config) { c.ProxyMemory = "lots" },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%s: error %v, want one naming the flag", flagName, err)
		}
	}
}
