package injection

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/capture"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// PodFields are what the kubelet fills in for the $(…) references of an injected pod.
type PodFields struct{ Name, Namespace, IP string }

// expand replaces the downward-API references the injector writes, as the kubelet would.
func (f PodFields) expand(s string) string {
	return strings.NewReplacer(ref(envPodName), f.Name, ref(envPodNamespace), f.Namespace, ref(envPodIP), f.IP).Replace(s)
}

// ProxyBootstrap reads back the Envoy bootstrap of an injected pod's sidecar, as Envoy would get
// it once the kubelet has filled in f: for tests and for looking at what a pod runs.
func ProxyBootstrap(pod *corev1.Pod, f PodFields) (*bootstrapv3.Bootstrap, error) {
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == ProxyContainer })
	if i < 0 {
		return nil, errors.New("the pod has no " + ProxyContainer + " init container")
	}
	args := pod.Spec.InitContainers[i].Args
	j := slices.Index(args, "--config-yaml")
	if j < 0 || j+1 >= len(args) {
		return nil, errors.New(ProxyContainer + " has no --config-yaml argument")
	}
	doc, err := yaml.YAMLToJSON([]byte(f.expand(args[j+1])))
	if err != nil {
		return nil, fmt.Errorf("the bootstrap is not YAML: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(doc, b); err != nil {
		return nil, fmt.Errorf("the bootstrap is not an Envoy v3 Bootstrap: %w", err)
	}
	return b, nil
}

// ProxyFileSecrets are the secrets sluice-init writes into the sidecar's SDS files, as its
// arguments in pod say; envoy.ValidateBootstrap needs them with ProxyBootstrap's bootstrap.
func ProxyFileSecrets(pod *corev1.Pod) ([]*tlsv3.Secret, error) {
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == InitContainer })
	if i < 0 {
		return nil, errors.New("the pod has no " + InitContainer + " init container")
	}
	fs := flag.NewFlagSet(InitContainer, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	capture.BindFlags(fs)
	t := envoy.BindXDSClientFlags(fs)
	if err := fs.Parse(pod.Spec.InitContainers[i].Args); err != nil {
		return nil, fmt.Errorf("%s's arguments: %w", InitContainer, err)
	}
	return envoy.XDSClientSecrets(*t)
}

// ProxylessBootstrap reads back the GRPC_XDS_BOOTSTRAP_CONFIG of an injected container once the
// kubelet has filled in f.
func ProxylessBootstrap(c corev1.Container, f PodFields) (string, error) {
	for _, e := range c.Env {
		if e.Name == EnvBootstrapConfig {
			return f.expand(e.Value), nil
		}
	}
	return "", fmt.Errorf("container %q has no %s", c.Name, EnvBootstrapConfig)
}
