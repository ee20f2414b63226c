package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/internal/proc"
)

// startScheduler runs the real kube-scheduler (built by hack/envtest.sh beside the API server).
func (c *Cluster) startScheduler() (*proc.Process, error) {
	args := []string{
		"--kubeconfig=" + c.env.KubeconfigPath,
		"--leader-elect=false",
		// No HTTPS endpoint: nothing listens, no port to pick or collide on.
		"--secure-port=0",
		// The defaults (50 QPS, burst 100) slow the binding of a burst of pods in a test.
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
		fmt.Sprintf("--v=%d", c.opts.Verbosity),
	}
	return proc.Start(proc.Options{Name: "kube-scheduler", Bin: filepath.Join(c.env.AssetsDir, "kube-scheduler"), Args: args})
}

// untaintNode removes the node.kubernetes.io/not-ready taint the API server puts on every new
// node. In a cluster the node lifecycle controller lifts it once the kubelet reports Ready; that
// controller is not run here (it would also evict pods from a node without lease heartbeats), so
// this does its one job once kwok has made the node Ready. Until then kube-scheduler would not
// place a pod on it.
func (c *Cluster) untaintNode(ctx context.Context) error {
	node, err := c.clientset.CoreV1().Nodes().Get(ctx, c.opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	taints := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady
	})
	if len(taints) == len(node.Spec.Taints) {
		return nil
	}
	// The resourceVersion makes the patch fail rather than drop a taint added meanwhile.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": node.ResourceVersion},
		"spec":     map[string]any{"taints": taints},
	})
	if err != nil {
		return err
	}
	_, err = c.clientset.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("removing the %s taint from node %s: %w", corev1.TaintNodeNotReady, node.Name, err)
	}
	return nil
}

// warmIPPool has kwok give one throw-away pod an IP, and waits until that pod is gone. kwok
// v0.8.0 makes a node's pod IP pool the first time a pod on it needs an IP, without a lock (a
// Load, then a Store, in PodController.ipPool): two pods bound at once to a new node can each get
// a pool of their own, and so the same first IP. With the pool made, kwok hands out IPs from one
// pool. Done before kube-scheduler starts, nothing else is bound to the node meanwhile.
func (c *Cluster) warmIPPool(ctx context.Context) error {
	pods := c.clientset.CoreV1().Pods(metav1.NamespaceDefault)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "testcluster-ip-pool-"},
		Spec: corev1.PodSpec{
			NodeName:                      c.opts.NodeName, // bound without a scheduler
			Containers:                    []corev1.Container{{Name: "pause", Image: "pause"}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating a pod to make kwok's IP pool: %w", err)
	}
	gotIP, deleted := false, false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		current, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && deleted:
			// Gone from the pod watch too, so no Runtime started later finds it there.
			if _, inStore, _ := c.podStore.GetByKey(pod.Namespace + "/" + pod.Name); !inStore {
				return nil
			}
		case err != nil:
			return err
		case err == nil && !gotIP && current.Status.PodIP != "":
			gotIP = true
			if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			deleted = true
		}
		if err := c.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwok's IP pool: pod %s (ip %v, deleted %v): %w", pod.Name, gotIP, deleted, ctx.Err())
		case <-tick.C:
		}
	}
}
