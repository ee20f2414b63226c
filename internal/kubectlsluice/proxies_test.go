package kubectlsluice_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/kubectlsluice"
	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// proxy-status and proxy-config read a real operator's debug pages over HTTPS, behind its
// authentication (TokenReview) and authorization (SubjectAccessReview), with real xDS clients
// connected: gRPC's own proxyless client, and an ADS stream that NACKs as a broken Envoy would.
func TestProxyStatusAndConfigFromARealOperator(t *testing.T) {
	ctx := t.Context()
	ns := namespace(t, "proxies")
	service(t, ns, "web", "web", 8080)
	workloadPod(t, ns, "web-1", "web", "web")
	workloadPod(t, ns, "legacy-1", "legacy", "default")
	certificateFor(t, ns, "web", "spiffe://cluster.local/ns/proxies/sa/web")

	xdsAddr, metricsAddr := testmesh.FreeAddr(), testmesh.FreeAddr()
	op, err := testmesh.StartOperator(env.Config, manager.Options{XDSPlaintextAddr: xdsAddr, MetricsAddr: metricsAddr, SecureMetrics: true,
		Debounce: 20 * time.Millisecond, GracefulShutdown: 5 * time.Second, SkipRolloutController: true})
	must(t, err)
	t.Cleanup(op.Stop)

	// The gRPC client resolves the Service through xDS on its first call (which has no backend).
	web := testmesh.Client(t, xdsAddr, envoy.NodeID(envoy.FlavourGRPC, "10.0.0.5", "web-1", ns), "web.proxies.svc.cluster.local:8080", nil)
	callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, _ = web.EmptyCall(callCtx, &testgrpc.Empty{})
	cancel()
	nackClusters(t, xdsAddr, envoy.NodeID(envoy.FlavourEnvoy, "10.0.0.6", "legacy-1", ns), "cluster web.proxies.svc.cluster.local|8080: unknown field")

	debugger := debugReaderToken(t)
	operator := []string{"-n", ns, "--operator-url", "https://" + metricsAddr, "--token", debugger}
	testmesh.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		r := plugin(t, append([]string{"proxy-status", "-o", "json"}, operator...)...)
		if r.err != nil {
			return r.err
		}
		var rows []struct {
			Pod, Sync string
			Acked     map[string]string
		}
		if err := json.Unmarshal([]byte(r.out), &rows); err != nil {
			return err
		}
		if len(rows) != 2 || rows[0].Sync != "NACKED" || rows[1].Sync != "SYNCED" || rows[1].Acked["endpoints"] == "" {
			return fmt.Errorf("proxy-status: %s", r.out)
		}
		return nil
	})

	r := plugin(t, append([]string{"proxy-status"}, operator...)...)
	must(t, r.err)
	checkGolden(t, "proxy_status.txt", unstableTable(r.out))

	r = plugin(t, append([]string{"proxy-config", "web-1", "--type", "clusters"}, operator...)...)
	must(t, r.err)
	checkGolden(t, "proxy_config_clusters.yaml", unstable(r.out))

	r = plugin(t, append([]string{"proxy-config", "web-1", "-o", "json"}, operator...)...)
	must(t, r.err)
	var all struct {
		Types map[string]struct {
			Resources map[string]json.RawMessage
		}
	}
	must(t, json.Unmarshal([]byte(r.out), &all))
	for _, typ := range []string{"listeners", "routes", "clusters", "endpoints"} {
		if len(all.Types[typ].Resources) == 0 {
			t.Errorf("proxy-config has no %s: %s", typ, r.out)
		}
	}

	if r := plugin(t, append([]string{"proxy-config", "nobody"}, operator...)...); r.err == nil || !strings.Contains(r.err.Error(), "no proxy of pod proxies/nobody") {
		t.Errorf("proxy-config of a pod without a proxy: %v", r.err)
	}
	stranger, err := env.ServiceAccountToken(ctx, "default", "stranger")
	must(t, err)
	r = plugin(t, "proxy-status", "-n", ns, "--operator-url", "https://"+metricsAddr, "--token", stranger)
	if r.code() != kubectlsluice.ExitOtherError || !strings.Contains(r.err.Error(), "xds-debug-reader") {
		t.Errorf("proxy-status with a token the operator does not authorize: %v, want an error naming the role", r.err)
	}

	t.Run("through a port-forward to the operator's pod", func(t *testing.T) {
		proxiesThroughPortForward(t, ns, metricsAddr, debugger, op)
	})
}

// unstable masks what differs between runs: ages, the operator's port and the versions.
func unstable(s string) string {
	s = regexp.MustCompile(`\S+ ago`).ReplaceAllString(s, "<age> ago")
	s = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "127.0.0.1:<port>")
	return regexp.MustCompile(`(Version"?: "?)\d+`).ReplaceAllString(s, "${1}N")
}

// unstableTable is unstable for a table: its versions are the numbers standing alone, and the
// columns' widths follow them.
func unstableTable(s string) string {
	s = regexp.MustCompile(`( )\d+( )`).ReplaceAllString(unstable(s), "${1}N$2")
	s = regexp.MustCompile(`( )\d+( )`).ReplaceAllString(s, "${1}N$2") // neighbours of the first matches
	return regexp.MustCompile(`(\S) {2,}`).ReplaceAllString(s, "$1  ")
}

// workloadPod is a pod of app running as service account sa.
func workloadPod(t *testing.T, ns, name, app, sa string) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labelsOf(app)},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:v1"}}},
	}))
}

// certificateFor creates the identity Certificate Sluice would ask cert-manager for, with cert-manager's
// Certificate kind installed as a schemaless CRD (only its spec.uris is read).
func certificateFor(t *testing.T, ns, sa, spiffeID string) {
	t.Helper()
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "certificates.cert-manager.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "cert-manager.io", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "certificates", Singular: "certificate", Kind: "Certificate", ListKind: "CertificateList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
		},
	}
	s := runtime.NewScheme()
	must(t, apiextensionsv1.AddToScheme(s))
	crds, err := client.New(env.Config, client.Options{Scheme: s})
	must(t, err)
	must(t, crds.Create(ctx, crd))
	cert := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"uris": []any{spiffeID}, "secretName": zerotrust.CertificateName(sa)}}}
	cert.SetGroupVersionKind(zerotrust.CertificateGVK)
	cert.SetNamespace(ns)
	cert.SetName(zerotrust.CertificateName(sa))
	testmesh.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error { return k8s.Create(ctx, cert) })
}

// debugReaderToken is a token of a service account bound to config/rbac's xds-debug-reader and
// allowed to read pods and Certificates (for the identities).
func debugReaderToken(t *testing.T) string {
	t.Helper()
	debug, err := testenv.ClusterRoleFile("xds_debug_reader_role.yaml")
	must(t, err)
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "mesh-debugger-reads"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
		{APIGroups: []string{"cert-manager.io"}, Resources: []string{"certificates"}, Verbs: []string{"get"}},
	}}
	token, err := env.ServiceAccountToken(context.Background(), "default", "mesh-debugger", debug, reader)
	must(t, err)
	return token
}

// nackClusters opens an ADS stream as node, asks for every cluster and rejects the answer.
func nackClusters(t *testing.T, xdsAddr, node, message string) {
	t.Helper()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(t.Context(), grpc.WaitForReady(true)) // the operator may still be starting
	must(t, err)
	must(t, stream.Send(&discovery.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resource.ClusterType}))
	resp, err := stream.Recv()
	must(t, err)
	must(t, stream.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: message}}))
}
