package zerotrust_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// StrictReady follows the proxies: with Ready certificates but no proxy it is False; once a
// proxyless gRPC client with each pod's node ID streams from the operator's xDS server it is
// True; when one disconnects it is False again, naming the pod. The proxies are real gRPC xDS
// clients; their replica reports them through a ConfigMap (internal/proxyreport).
func TestStrictReady(t *testing.T) {
	ctx := t.Context()
	ns := namespace(t, "zt-strict")
	pods(t, ns, "web", map[string]string{"app": "web"}, "web-1", "web-2", "web-3")
	running(t, ns, "web-1", "web-2") // web-3 stays Pending: it does not count
	must(t, k8s.Create(ctx, zeroTrust(ns, "shop", nil)))
	condition(t, ns, "shop", meshv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
	zt := condition(t, ns, "shop", meshv1alpha1.ConditionStrictReady, metav1.ConditionFalse, "NotReady")
	wantMTLS(t, zt, 2, 2, 0, "web-1: no connected proxy", "web-2: no connected proxy")

	start := time.Now()
	proxies := map[string]*grpc.ClientConn{}
	for i, pod := range []string{"web-1", "web-2"} {
		proxies[pod] = connectProxy(t, ns, pod, fmt.Sprintf("192.0.2.%d", 201+i))
	}
	zt = condition(t, ns, "shop", meshv1alpha1.ConditionStrictReady, metav1.ConditionTrue, "Ready")
	t.Logf("both proxies connected: StrictReady True %v after they were started", time.Since(start).Round(time.Millisecond))
	wantMTLS(t, zt, 2, 2, 2)

	start = time.Now()
	must(t, proxies["web-2"].Close())
	zt = condition(t, ns, "shop", meshv1alpha1.ConditionStrictReady, metav1.ConditionFalse, "NotReady")
	t.Logf("web-2's proxy disconnected: StrictReady False %v later: %s", time.Since(start).Round(time.Millisecond),
		meshStatusCondition(zt).Message)
	wantMTLS(t, zt, 2, 2, 1, "web-2: no connected proxy")

	// PERMISSIVE reports whether STRICT would be safe.
	patch := client.MergeFrom(zt.DeepCopy())
	zt.Spec.MTLS.Mode = meshv1alpha1.MTLSPermissive
	must(t, k8s.Patch(ctx, zt, patch))
	condition(t, ns, "shop", meshv1alpha1.ConditionStrictReady, metav1.ConditionFalse, "NotSafeToEnforce")
	proxies["web-2"] = connectProxy(t, ns, "web-2", "192.0.2.202")
	zt = condition(t, ns, "shop", meshv1alpha1.ConditionStrictReady, metav1.ConditionTrue, "SafeToEnforce")
	if !zt.Status.MTLS.SafeToEnforce {
		t.Errorf("status.mtls.safeToEnforce false with StrictReady True: %+v", zt.Status.MTLS)
	}
}

func meshStatusCondition(zt *meshv1alpha1.ZeroTrust) metav1.Condition {
	for _, c := range zt.Status.Conditions {
		if c.Type == meshv1alpha1.ConditionStrictReady {
			return c
		}
	}
	return metav1.Condition{}
}

// wantMTLS checks status.mtls; notReady are pod names with what they lack, without the namespace.
func wantMTLS(t *testing.T, zt *meshv1alpha1.ZeroTrust, running, withCertificate, withProxy int32, notReady ...string) {
	t.Helper()
	m := zt.Status.MTLS
	if m == nil {
		t.Fatalf("no status.mtls")
	}
	var want []string
	for _, n := range notReady {
		want = append(want, zt.Namespace+"/"+n)
	}
	if m.RunningPods != running || m.WithCertificate != withCertificate || m.WithProxy != withProxy ||
		!slices.Equal(m.NotReady, want) || m.SafeToEnforce != (len(want) == 0) {
		t.Errorf("status.mtls %+v, want %d running, %d with a certificate, %d with a proxy, not ready %q",
			*m, running, withCertificate, withProxy, want)
	}
}

// running sets the pods' phase to Running, as a kubelet would.
func running(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		pod := &corev1.Pod{}
		must(t, k8s.Get(t.Context(), clientKey(ns, name), pod))
		pod.Status.Phase = corev1.PodRunning
		must(t, k8s.Status().Update(t.Context(), pod))
	}
}

// connectProxy starts a proxyless gRPC client with the pod's node ID: its xDS client streams
// from the operator until the connection is closed (at the latest when the test ends).
func connectProxy(t *testing.T, ns, pod, ip string) *grpc.ClientConn {
	t.Helper()
	resolver, err := xds.NewXDSResolverWithConfigForTesting(testmesh.Bootstrap(xdsAddr, envoy.NodeID(envoy.FlavourGRPC, ip, pod, ns)))
	must(t, err)
	conn, err := grpc.NewClient("xds:///web."+ns+".svc.cluster.local:80",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	must(t, err)
	conn.Connect()
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
