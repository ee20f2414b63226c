// Package resources holds the plain bundle of cluster objects the xDS translation reads. It is
// gathered from the informer cache by the controller, or loaded from YAML in tests; nothing in it
// talks to the API server.
package resources

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Resources is every object that shapes the mesh's config.
type Resources struct {
	Services        []*corev1.Service
	EndpointSlices  []*discoveryv1.EndpointSlice
	Pods            []*corev1.Pod
	TrafficPolicies []*meshv1alpha1.TrafficPolicy
	Rollouts        []*meshv1alpha1.Rollout
	ZeroTrusts      []*meshv1alpha1.ZeroTrust
	// Secrets are the workload identity Secrets (label mesh.sluice.dev/identity), with only their
	// tls.crt, tls.key and ca.crt.
	Secrets []*corev1.Secret
	// TrustBundles are the trust bundle ConfigMaps the leader keeps (zerotrust.TrustBundleName):
	// the roots they retain after a CA rotation stay in Envoy's bundles too.
	TrustBundles []*corev1.ConfigMap
	// OperatorNamespace is the operator's own namespace: a ZeroTrust there with an empty selector
	// covers the whole mesh.
	OperatorNamespace string
}

// Add puts obj into the bundle by its type; objects of other types are an error.
func (r *Resources) Add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Service:
		r.Services = append(r.Services, o)
	case *discoveryv1.EndpointSlice:
		r.EndpointSlices = append(r.EndpointSlices, o)
	case *corev1.Pod:
		r.Pods = append(r.Pods, o)
	case *meshv1alpha1.TrafficPolicy:
		r.TrafficPolicies = append(r.TrafficPolicies, o)
	case *meshv1alpha1.Rollout:
		r.Rollouts = append(r.Rollouts, o)
	case *meshv1alpha1.ZeroTrust:
		r.ZeroTrusts = append(r.ZeroTrusts, o)
	case *corev1.Secret:
		r.Secrets = append(r.Secrets, o)
	case *corev1.ConfigMap:
		r.TrustBundles = append(r.TrustBundles, o)
	default:
		return fmt.Errorf("resources: %T is not an object the translation reads", obj)
	}
	return nil
}

// FromYAML decodes a multi-document YAML stream of Kubernetes and Sluice objects.
func FromYAML(scheme *runtime.Scheme, data []byte) (*Resources, error) {
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	res := &Resources{}
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := res.Add(obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
	}
}
