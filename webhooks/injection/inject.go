// Package injection adds Sluice's data plane to pods: an Envoy native sidecar with traffic capture,
// or, for proxyless gRPC, the xDS bootstrap and certificate files. Inject is a pure function of
// the pod, its namespace and the operator's Config; webhook.go is the admission glue. See
// docs/injection.md.
package injection

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// The labels and annotations that ask for injection and say how.
const (
	// LabelInject on a namespace: "enabled" injects every pod in it that does not opt out.
	LabelInject = "mesh.sluice.dev/inject"
	// AnnotationInject on a pod: "true" opts in (whatever its namespace says), "false" opts out.
	AnnotationInject = "mesh.sluice.dev/inject"
	// AnnotationMode on a pod: "envoy" (the default) or "grpc" (proxyless gRPC, no sidecar).
	AnnotationMode = "mesh.sluice.dev/inject-mode"
	// AnnotationInjected is set by the injector to the mode it injected; a pod that has it is never
	// injected again.
	AnnotationInjected = "mesh.sluice.dev/injected"
	// Capture exclusions (Envoy mode), comma-separated: these are reached directly.
	AnnotationExcludeInboundPorts  = "mesh.sluice.dev/exclude-inbound-ports"
	AnnotationExcludeOutboundPorts = "mesh.sluice.dev/exclude-outbound-ports"
	AnnotationExcludeOutboundCIDRs = "mesh.sluice.dev/exclude-outbound-cidrs"

	ValueEnabled = "enabled"
)

// Mode is how a pod joins the mesh.
type Mode string

// The modes: an Envoy sidecar, or proxyless gRPC.
const (
	ModeEnvoy Mode = "envoy"
	ModeGRPC  Mode = "grpc"
)

// The names of what the injector adds.
const (
	ProxyContainer = "sluice-proxy"
	InitContainer  = "sluice-init"
	IdentityVolume = "sluice-identity"
	TrustVolume    = "sluice-trust-bundle"
	ProxyVolume    = "sluice-proxy-config"
	// ProxyDir is where sluice-init writes the sidecar's SDS files (an emptyDir the two share).
	ProxyDir = "/var/run/sluice/proxy"
	// IdentityDir holds the workload's identity Secret (sluice-identity-<serviceAccount>):
	// tls.crt, tls.key and ca.crt.
	IdentityDir = "/var/run/sluice/identity"
	// TrustDir holds the trust-bundle ConfigMap's ca.crt (proxyless mode).
	TrustDir = "/var/run/sluice/trust-bundle"
)

// Wanted says whether and how pod should be injected: an opt-out annotation wins, then an opt-in
// annotation or the namespace label. Host-network pods are never injected (capture would redirect
// the node's traffic). An annotation with a value that means nothing is an error naming it.
func Wanted(pod *corev1.Pod, namespace *corev1.Namespace) (Mode, bool, error) {
	if pod.Spec.HostNetwork {
		return "", false, nil
	}
	in := namespace.GetLabels()[LabelInject] == ValueEnabled
	switch v, ok := pod.Annotations[AnnotationInject]; {
	case !ok:
	case v == "true":
		in = true
	case v == "false":
		return "", false, nil
	default:
		return "", false, fmt.Errorf("annotation %s is %q; want \"true\" or \"false\"", AnnotationInject, v)
	}
	if !in {
		return "", false, nil
	}
	switch m := Mode(pod.Annotations[AnnotationMode]); m {
	case "", ModeEnvoy:
		return ModeEnvoy, true, nil
	case ModeGRPC:
		return ModeGRPC, true, nil
	default:
		return "", false, fmt.Errorf("annotation %s is %q; want %q (an Envoy sidecar, the default) or %q (proxyless gRPC)", AnnotationMode, m, ModeEnvoy, ModeGRPC)
	}
}

// Injected reports whether pod already has Sluice's data plane: the injector's annotation, or a
// container of its names (a pod injected by hand or by a copy of a manifest).
func Injected(pod *corev1.Pod) bool {
	if pod.Annotations[AnnotationInjected] != "" {
		return true
	}
	ours := func(c corev1.Container) bool { return c.Name == ProxyContainer || c.Name == InitContainer }
	return slices.ContainsFunc(pod.Spec.InitContainers, ours) || slices.ContainsFunc(pod.Spec.Containers, ours)
}

// Inject returns a copy of pod with Sluice's data plane added if the pod and its namespace ask for
// it (Wanted) and it has none yet (Injected); otherwise an unchanged copy. namespace is the pod's
// namespace object (its name and labels). Injecting the result again changes nothing.
func Inject(pod *corev1.Pod, namespace *corev1.Namespace, cfg Config) (*corev1.Pod, error) {
	out := pod.DeepCopy()
	if Injected(pod) {
		return out, nil
	}
	mode, ok, err := Wanted(pod, namespace)
	if err != nil || !ok {
		return out, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := workloadOf(out, namespace.GetName())
	switch mode {
	case ModeGRPC:
		err = injectProxyless(out, w, cfg)
	default:
		err = injectEnvoy(out, w, cfg)
	}
	if err != nil {
		return nil, err
	}
	setAnnotation(out, AnnotationInjected, string(mode))
	return out, nil
}

// workload is what the bootstrap says about the pod that admission already knows. Its name and
// IP are not known yet (a generated name comes later): the containers read them from the downward
// API, in the environment variables podEnv defines.
type workload struct {
	namespace, app, version, serviceAccount string
}

func workloadOf(pod *corev1.Pod, namespace string) workload {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return workload{namespace: namespace, app: pod.Labels["app"], version: pod.Labels["version"], serviceAccount: sa}
}

// The downward-API variables the bootstrap refers to as $(NAME), which the kubelet expands in a
// container's args and in later env values.
const (
	envPodName      = "SLUICE_POD_NAME"
	envPodNamespace = "SLUICE_POD_NAMESPACE"
	envPodIP        = "SLUICE_POD_IP"
)

func podEnv() []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	return []corev1.EnvVar{
		field(envPodName, "metadata.name"),
		field(envPodNamespace, "metadata.namespace"),
		field(envPodIP, "status.podIP"),
	}
}

func ref(env string) string { return "$(" + env + ")" }

func setAnnotation(pod *corev1.Pod, key, value string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[key] = value
}

// setAnnotationIfAbsent leaves what the user set.
func setAnnotationIfAbsent(pod *corev1.Pod, key, value string) {
	if _, ok := pod.Annotations[key]; !ok {
		setAnnotation(pod, key, value)
	}
}
