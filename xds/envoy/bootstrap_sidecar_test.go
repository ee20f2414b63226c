package envoy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/golden"
)

func testSidecarOptions() SidecarOptions {
	return SidecarOptions{
		XDSTLS: &XDSClientTLS{
			CertFile: "/var/run/sluice/identity/tls.crt", KeyFile: "/var/run/sluice/identity/tls.key",
			CAFile: "/var/run/sluice/identity/ca.crt", ServerName: "sluice-xds.sluice-system.svc",
			SDSDir: "/var/run/sluice/proxy",
		},
		Probes: []AppProbe{
			{Path: "/app-health/app/readiness", Kind: ProbeHTTP, Port: 8080, AppPath: "/ready?full=1", Timeout: 2 * time.Second},
			{Path: "/app-health/app/liveness", Kind: ProbeTCP, Port: 8080, Period: 5 * time.Second},
			{Path: "/app-health/app/startup", Kind: ProbeGRPC, Port: 9000, GRPCService: "ledger"},
			{Path: "/app-health/admin/readiness", Kind: ProbeHTTPS, Port: 8443, AppPath: "/healthz"},
		},
	}
}

func TestSidecarBootstrapGolden(t *testing.T) {
	o := testSidecarOptions()
	b, err := SidecarBootstrap(testBootstrapOptions(), o)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := XDSClientSecrets(*o.XDSTLS)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateBootstrap(b, secrets...); err != nil {
		t.Errorf("ValidateBootstrap: %v", err)
	}
	if err := ValidateBootstrap(b); err == nil || !strings.Contains(err.Error(), XDSClientCertSecret) {
		t.Errorf("ValidateBootstrap without the file secrets = %v; want the missing %q named", err, XDSClientCertSecret)
	}
	got, err := ProtoYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "bootstrap_sidecar.out.yaml"), got)

	// The SDS files, read back as Envoy reads a path config source, hold the same secrets.
	files, err := XDSClientSecretFiles(*o.XDSTLS)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		path := "/var/run/sluice/proxy/" + sec.GetName() + ".yaml"
		doc, err := yaml.YAMLToJSON(files[path])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp := &discoveryv3.DiscoveryResponse{}
		if err := protojson.Unmarshal(doc, resp); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		back := &tlsv3.Secret{}
		if len(resp.GetResources()) != 1 || resp.GetResources()[0].UnmarshalTo(back) != nil || !proto.Equal(back, sec) {
			t.Errorf("%s does not hold secret %q:\n%s", path, sec.GetName(), files[path])
		}
	}
}

func TestValidateBootstrapFindsAMissingCluster(t *testing.T) {
	b, err := SidecarBootstrap(testBootstrapOptions(), testSidecarOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Drop the HTTP probe's cluster: the health listener's route still names it.
	b.StaticResources.Clusters = slices.DeleteFunc(b.StaticResources.Clusters, func(c *clusterv3.Cluster) bool {
		return c.GetName() == "sluice-probe-http-8080"
	})
	secrets, err := XDSClientSecrets(*testSidecarOptions().XDSTLS)
	if err != nil {
		t.Fatal(err)
	}
	err = ValidateBootstrap(b, secrets...)
	if err == nil || !strings.Contains(err.Error(), `cluster "sluice-probe-http-8080" does not exist`) {
		t.Errorf("ValidateBootstrap = %v; want the missing probe cluster named", err)
	}
}

func TestSidecarBootstrapRejectsBadProbes(t *testing.T) {
	for _, p := range []AppProbe{
		{Path: "/elsewhere", Kind: ProbeHTTP, Port: 80},
		{Path: "/app-health/a/readiness", Kind: ProbeHTTP, Port: 0},
		{Path: "/app-health/a/readiness", Kind: "EXEC", Port: 80},
	} {
		if _, err := SidecarBootstrap(testBootstrapOptions(), SidecarOptions{Probes: []AppProbe{p}}); err == nil {
			t.Errorf("probe %+v accepted", p)
		}
	}
	if _, err := SidecarBootstrap(testBootstrapOptions(), SidecarOptions{XDSTLS: &XDSClientTLS{CertFile: "x"}}); err == nil {
		t.Error("xDS TLS without key, CA and server name accepted")
	}
}
