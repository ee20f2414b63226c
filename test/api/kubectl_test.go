package api_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// kubectl get sluice lists the three kinds (the category) with their columns.
func TestKubectlGetSluice(t *testing.T) {
	applySamples(t)

	// Give the Rollout a status, as its controller would, so its columns have values.
	ctx := context.Background()
	ro := &meshv1alpha1.Rollout{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "checkout"}, ro); err != nil {
		t.Fatal(err)
	}
	ro.Status.Phase = meshv1alpha1.RolloutProgressing
	ro.Status.CanaryWeight = 30
	ro.Status.CurrentStepIndex = ptr.To[int32](2)
	if err := env.Client.Status().Update(ctx, ro); err != nil {
		t.Fatal(err)
	}

	out, err := env.Kubectl("get", "sluice", "-n", "shop")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get sluice -n shop:\n%s", out)
	for _, want := range []string{
		"rollout.mesh.sluice.dev/checkout", "PHASE", "WEIGHT", "STEP", "Progressing   30       2",
		"trafficpolicy.mesh.sluice.dev/checkout", "SERVICE", "PROGRAMMED",
		"zerotrust.mesh.sluice.dev/shop", "MTLS", "STRICT", "mesh-ca",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get sluice does not show %q", want)
		}
	}

	// Short names resolve.
	for _, short := range []string{"sro", "tp", "zt"} {
		if _, err := env.Kubectl("get", short, "-n", "shop"); err != nil {
			t.Errorf("short name %s: %v", short, err)
		}
	}
}

// kubectl explain shows the field docs written in api/v1alpha1.
func TestKubectlExplain(t *testing.T) {
	out, err := env.Kubectl("explain", "rollouts.spec.strategy.canary.steps.pause")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "waits until the rollout is promoted by hand") {
		t.Errorf("kubectl explain lacks the field's doc:\n%s", out)
	}
}
