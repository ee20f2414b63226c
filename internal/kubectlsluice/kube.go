package kubectlsluice

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// kube holds one REST client per API group the commands read: core/v1, apps/v1 and Sluice's, with a
// scheme of just those kinds. Not controller-runtime's client, nor client-go's clientset or typed
// clients: they would link every API group of Kubernetes (and informers, Prometheus) into the
// plugin.
type kube struct {
	cfg     *rest.Config
	core    rest.Interface
	apps    rest.Interface
	mesh    rest.Interface
	dynamic dynamic.Interface // cert-manager's Certificates, read as unstructured
}

// scheme decodes the kinds the plugin reads.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(meshv1alpha1.AddToScheme(s))
	metav1.AddToGroupVersion(s, meshv1alpha1.GroupVersion)
	return s
}()

func newKube(cfg *rest.Config) (*kube, error) {
	k := &kube{cfg: cfg}
	var err error
	if k.core, err = groupClient(cfg, corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if k.apps, err = groupClient(cfg, appsv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if k.mesh, err = groupClient(cfg, meshv1alpha1.GroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if k.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return k, nil
}

func groupClient(cfg *rest.Config, gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = apiPath
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	return rest.RESTClientFor(c)
}

// Resources the plugin reads, by the client that serves them.
const (
	rolloutsResource        = "rollouts"
	trafficPoliciesResource = "trafficpolicies"
	zeroTrustsResource      = "zerotrusts"
)

// get reads one object.
func get(ctx context.Context, c rest.Interface, resource, ns, name string, into runtime.Object) error {
	return c.Get().Namespace(ns).Resource(resource).Name(name).Do(ctx).Into(into)
}

// list lists a resource in namespace ns ("" for every namespace), with query parameters such as
// fieldSelector or labelSelector.
func list(ctx context.Context, c rest.Interface, resource, ns string, into runtime.Object, params ...string) error {
	req := c.Get().NamespaceIfScoped(ns, ns != "").Resource(resource)
	for i := 0; i+1 < len(params); i += 2 {
		req = req.Param(params[i], params[i+1])
	}
	if err := req.Do(ctx).Into(into); err != nil {
		return fmt.Errorf("listing %s: %w", resource, err)
	}
	return nil
}

// rollout reads a Rollout, with an error that says how to find the right one.
func (k *kube) rollout(ctx context.Context, ns, name string) (*meshv1alpha1.Rollout, error) {
	ro := &meshv1alpha1.Rollout{}
	err := get(ctx, k.mesh, rolloutsResource, ns, name, ro)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("rollout %q not found in namespace %q (`kubectl get rollouts -A` lists them; -n picks the namespace)", name, ns)
	}
	return ro, err
}

// deployment reads a Deployment; nil when it does not exist.
func (k *kube) deployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := get(ctx, k.apps, "deployments", ns, name, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return d, err
}

// mergePatchRollout applies a JSON merge patch to a Rollout.
func (k *kube) mergePatchRollout(ctx context.Context, ns, name string, patch []byte) error {
	return k.mesh.Patch(types.MergePatchType).Namespace(ns).Resource(rolloutsResource).Name(name).Body(patch).Do(ctx).Error()
}
