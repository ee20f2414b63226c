package injection

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

// FuzzInject injects arbitrary pods (JSON) in a namespace that is labelled for injection or not:
// Inject never panics, injecting its result again changes nothing, a pod it does not inject
// comes back unchanged, and every sidecar bootstrap it writes is valid. Seeds are in
// testdata/fuzz/FuzzInject.
//
//	go test ./webhooks/injection -run '^$' -fuzz FuzzInject -fuzztime 60s
func FuzzInject(f *testing.F) {
	f.Fuzz(func(t *testing.T, podJSON []byte, labelled bool) {
		pod := &corev1.Pod{}
		if json.Unmarshal(podJSON, pod) != nil {
			return
		}
		ns := &corev1.Namespace{}
		ns.Name = "fuzz"
		if labelled {
			ns.Labels = map[string]string{LabelInject: ValueEnabled}
		}
		got, err := Inject(pod, ns, DefaultConfig())
		if err != nil {
			return
		}
		again, err := Inject(got, ns, DefaultConfig())
		if err != nil {
			t.Fatalf("a second injection failed: %v", err)
		}
		if !equality.Semantic.DeepEqual(got, again) {
			t.Fatal("a second injection changed the pod")
		}
		switch Mode(got.Annotations[AnnotationInjected]) {
		case "":
			if !equality.Semantic.DeepEqual(pod, got) {
				t.Fatal("a pod that was not injected was changed")
			}
		case ModeEnvoy:
			if Injected(pod) {
				return // injected by hand before: nothing was added
			}
			b, err := ProxyBootstrap(got, PodFields{Name: "p", Namespace: ns.Name, IP: "10.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			secrets, err := ProxyFileSecrets(got)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoy.ValidateBootstrap(b, secrets...); err != nil {
				t.Fatalf("ValidateBootstrap: %v", err)
			}
		}
	})
}
