package kubectlsluice_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// operatorPod is the stand-in for an operator replica: kwok plays its node's kubelet and forwards
// its metrics port to the real operator the test runs.
const operatorPod = "sluice-controller-manager-0"

// proxiesThroughPortForward runs proxy-status and proxy-config without --operator-url: the plugin
// finds the Ready operator pod by its labels and port-forwards to it through the API server
// (pods/portforward), whose kubelet, kwok, forwards the pod's port 8443 to the operator listening on
// metricsAddr. The output is the one --operator-url gives. Once the operator stops, the forward
// has nothing to reach and the command fails naming the pod.
func proxiesThroughPortForward(t *testing.T, ns, metricsAddr, token string, op *testmesh.Operator) {
	host, port, err := net.SplitHostPort(metricsAddr)
	must(t, err)
	forwards := filepath.Join(t.TempDir(), "port-forward.yaml")
	must(t, os.WriteFile(forwards, fmt.Appendf(nil, `apiVersion: kwok.x-k8s.io/v1alpha1
kind: PortForward
metadata: {name: %s, namespace: %s}
spec:
  forwards:
  - ports: [8443]
    target: {address: %q, port: %s}
`, operatorPod, ns, host, port), 0o600))
	cluster := testcluster.Start(t, env, testcluster.Options{NodeIP: "127.0.0.1", KubeletPort: freePort(t), KwokConfigs: []string{forwards}})

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: operatorPod, Labels: map[string]string{
			"app.kubernetes.io/name": "sluice", "app.kubernetes.io/component": "controller-manager"}},
		Spec: corev1.PodSpec{NodeName: cluster.NodeName(), Containers: []corev1.Container{{Name: "manager", Image: "sluice:test",
			Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}}}}},
	}
	must(t, k8s.Create(t.Context(), pod))
	testmesh.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("pod %s not Ready: %+v", pod.Name, pod.Status)
	})

	forwarded := []string{"-n", ns, "--operator-namespace", ns, "--token", token}
	r := plugin(t, append([]string{"proxy-status"}, forwarded...)...)
	must(t, r.err)
	checkGolden(t, "proxy_status.txt", unstableTable(r.out))
	// proxy-config names the replica it read: the URL given, or the pod forwarded to.
	r = plugin(t, append([]string{"proxy-config", "web-1", "--type", "clusters"}, forwarded...)...)
	must(t, r.err)
	checkGolden(t, "proxy_config_clusters.yaml", strings.Replace(unstable(r.out), "operator: "+operatorPod+"\n", "operator: https://127.0.0.1:<port>\n", 1))
	if !strings.Contains(r.out, "operator: "+operatorPod+"\n") {
		t.Errorf("proxy-config through the port-forward does not name the pod %s:\n%s", operatorPod, r.out)
	}

	op.Stop()
	r = plugin(t, append([]string{"proxy-status"}, forwarded...)...)
	want := "operator pod " + operatorPod + ": no answer through the port-forward to its port 8443"
	if r.code() != kubectlsluice.ExitOtherError || !strings.Contains(r.err.Error(), want) || !strings.Contains(r.err.Error(), "--operator-port") {
		t.Errorf("proxy-status through a forward whose target is gone: %v, want an error saying %q and naming --operator-port", r.err, want)
	}
	t.Logf("proxy-status through a forward whose target is gone: %v", r.err)
}

// freePort is a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(testmesh.FreeAddr())
	must(t, err)
	var p int
	_, err = fmt.Sscan(port, &p)
	must(t, err)
	return p
}
