package injection

import (
	"context"
	"encoding/json"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Failure policy Ignore: every pod creation in the cluster passes through this webhook, and an
// operator that is down or slow (timeoutSeconds 5) must not stop them all, kube-system's included.
// A pod created while the webhook did not answer runs without the mesh; docs/injection.md says
// how to find such pods (no mesh.sluice.dev/injected annotation in an injected namespace) and
// restart them. reinvocationPolicy IfNeeded: a later webhook that adds containers gets us called
// again, and the pod, already injected, is left as it is.
//
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=ignore,sideEffects=None,groups="",resources=pods,verbs=create,versions=v1,name=inject.mesh.sluice.dev,admissionReviewVersions=v1,reinvocationPolicy=IfNeeded,timeoutSeconds=5
//
// The injector reads the pod's namespace (its labels).
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Path is where the injection webhook is served (the marker's path).
const Path = "/mutate-v1-pod"

// Webhook answers pod admission requests with Inject's changes as a JSON patch.
type Webhook struct {
	// Namespaces reads the pod's namespace; a live reader (no namespace informer is needed).
	Namespaces client.Reader
	Config     Config
	Decoder    admission.Decoder
}

// Register serves the injection webhook on mgr's webhook server.
func Register(mgr ctrl.Manager, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(Path, &admission.Webhook{Handler: &Webhook{
		Namespaces: mgr.GetAPIReader(), Config: cfg, Decoder: admission.NewDecoder(mgr.GetScheme()),
	}})
	return nil
}

// Handle injects the pod of a CREATE request. A pod that asks for injection with annotations
// that mean nothing is refused with a message naming the annotation; so that the user can fix it
// instead of running without the mesh unawares.
func (w *Webhook) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := w.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	ns := &corev1.Namespace{}
	if err := w.Namespaces.Get(ctx, types.NamespacedName{Name: req.Namespace}, ns); err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	out, err := Inject(pod, ns, w.Config)
	if err != nil {
		return admission.Denied(err.Error())
	}
	mode := out.Annotations[AnnotationInjected]
	if mode == pod.Annotations[AnnotationInjected] {
		return admission.Allowed("")
	}
	log.FromContext(ctx).V(1).Info("injected", "namespace", req.Namespace, "pod", podName(pod), "mode", mode)
	raw, err := json.Marshal(out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName + "…"
}
