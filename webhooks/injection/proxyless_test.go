package injection

import (
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/xds"
	corev1 "k8s.io/api/core/v1"
)

// TestGRPCAcceptsProxylessBootstrap hands the injected bootstrap, as the kubelet fills it in, to
// grpc-go's xDS resolver, which parses it when it is built; a bootstrap it does not take is
// refused there, as the broken copy shows.
func TestGRPCAcceptsProxylessBootstrap(t *testing.T) {
	pod := &corev1.Pod{}
	pod.Labels = map[string]string{"app": "ledger", "version": "v2"}
	pod.Annotations = map[string]string{AnnotationInject: "true", AnnotationMode: string(ModeGRPC)}
	pod.Spec.ServiceAccountName = "ledger"
	pod.Spec.Containers = []corev1.Container{{Name: "ledger", Image: "ledger"}}
	ns := &corev1.Namespace{}
	ns.Name = "payments"
	got, err := Inject(pod, ns, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ProxylessBootstrap(got.Spec.Containers[0], PodFields{Name: "ledger-0", Namespace: "payments", IP: "10.244.1.7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := buildXDSResolver(doc); err != nil {
		t.Errorf("grpc-go refuses the injected bootstrap: %v\n%s", err, doc)
	}
	if err := buildXDSResolver(strings.Replace(doc, `"tls"`, `"tlz"`, 1)); err == nil {
		t.Error("grpc-go took a bootstrap with unknown channel credentials: the check proves nothing")
	}
}

func buildXDSResolver(bootstrap string) error {
	b, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		return err
	}
	u, _ := url.Parse("xds:///ledger.payments.svc.cluster.local:9000")
	r, err := b.Build(resolver.Target{URL: *u}, discardConn{}, resolver.BuildOptions{})
	if err != nil {
		return err
	}
	r.Close()
	return nil
}

// discardConn is the channel side of a resolver that is closed at once.
type discardConn struct{ resolver.ClientConn }

func (discardConn) UpdateState(resolver.State) error { return nil }
func (discardConn) ReportError(error)                {}
func (discardConn) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}
