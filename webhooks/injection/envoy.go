package injection

import (
	"fmt"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/capture"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

// ProxyUID is the UID (and GID) the sidecar runs as; capture never redirects its connections.
const ProxyUID = capture.DefaultProxyUID

// injectEnvoy adds, before the pod's own init containers: sluice-init, which programs the capture
// and exits, then the proxy as a native sidecar (an init container that keeps running,
// restartPolicy Always), so the pod's other init containers already run with it. The kubelet's
// probes of the application move to the sidecar's health listener.
func injectEnvoy(pod *corev1.Pod, w workload, cfg Config) error {
	excl, err := exclusions(pod)
	if err != nil {
		return err
	}
	probes := rewriteProbes(pod)
	xdsTLS, err := xdsClientTLS(cfg)
	if err != nil {
		return err
	}
	args, err := proxyArgs(w, cfg, xdsTLS, probes)
	if err != nil {
		return err
	}
	resources, err := proxyResources(cfg)
	if err != nil {
		return err
	}
	ready := &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: envoy.ReadyPath, Port: intstr.FromInt32(envoy.DefaultHealthPort),
		}},
		PeriodSeconds: 2, FailureThreshold: 30, TimeoutSeconds: 1,
	}
	proxy := corev1.Container{
		Name:          ProxyContainer,
		Image:         cfg.ProxyImage,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Args:          args,
		Env:           podEnv(),
		Ports: []corev1.ContainerPort{
			{Name: "sluice-stats", ContainerPort: envoy.DefaultStatsPort, Protocol: corev1.ProtocolTCP},
			{Name: "sluice-health", ContainerPort: envoy.DefaultHealthPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: resources,
		// The startup probe holds the pod's next init containers and its containers back until
		// Envoy has its first config: their traffic is captured from the start.
		StartupProbe:   ready,
		ReadinessProbe: &corev1.Probe{ProbeHandler: ready.ProbeHandler, PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 1},
		VolumeMounts: []corev1.VolumeMount{
			{Name: IdentityVolume, MountPath: IdentityDir, ReadOnly: true},
			{Name: ProxyVolume, MountPath: ProxyDir, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](ProxyUID), RunAsGroup: ptr.To[int64](ProxyUID), RunAsNonRoot: ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	initC := corev1.Container{
		Name:  InitContainer,
		Image: cfg.InitImage,
		// It also writes the sidecar's SDS files for the xDS client certificate.
		Args:         append(excl.Args(), xdsTLS.Args()...),
		VolumeMounts: []corev1.VolumeMount{{Name: ProxyVolume, MountPath: ProxyDir}},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
		}},
		// NET_ADMIN in the pod's own network namespace is all nftables needs; root is needed for
		// the capability to be effective. It runs once, before anything else in the pod.
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	pod.Spec.InitContainers = append([]corev1.Container{initC, proxy}, pod.Spec.InitContainers...)
	pod.Spec.Volumes = append(pod.Spec.Volumes, identityVolume(w), corev1.Volume{
		Name: ProxyVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("1Mi"))}},
	})
	setAnnotationIfAbsent(pod, "prometheus.io/scrape", "true")
	setAnnotationIfAbsent(pod, "prometheus.io/port", strconv.Itoa(envoy.DefaultStatsPort))
	setAnnotationIfAbsent(pod, "prometheus.io/path", "/stats/prometheus")
	if len(pod.Spec.Containers) > 0 {
		setAnnotationIfAbsent(pod, "kubectl.kubernetes.io/default-container", pod.Spec.Containers[0].Name)
	}
	return nil
}

// exclusions is the capture of the pod: the sidecar's own ports are reached directly, and so is
// what the pod's annotations exclude.
func exclusions(pod *corev1.Pod) (capture.Config, error) {
	c := capture.Config{
		InboundPort: capture.DefaultInboundPort, OutboundPort: capture.DefaultOutboundPort, ProxyUID: ProxyUID,
	}
	in, err := capture.ParsePorts(pod.Annotations[AnnotationExcludeInboundPorts])
	if err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationExcludeInboundPorts, err)
	}
	c.ExcludeInboundPorts, _ = capture.ParsePorts(capture.FormatPorts(append(in, envoy.DefaultStatsPort, envoy.DefaultHealthPort)))
	if c.ExcludeOutboundPorts, err = capture.ParsePorts(pod.Annotations[AnnotationExcludeOutboundPorts]); err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationExcludeOutboundPorts, err)
	}
	if c.ExcludeOutboundCIDRs, err = capture.ParseCIDRs(pod.Annotations[AnnotationExcludeOutboundCIDRs]); err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationExcludeOutboundCIDRs, err)
	}
	return c, nil
}

// proxyArgs start Envoy with the whole bootstrap inline (--config-yaml): the pod's name and IP are
// $(…) references the kubelet fills in from the downward API.
func proxyArgs(w workload, cfg Config, xdsTLS envoy.XDSClientTLS, probes []envoy.AppProbe) ([]string, error) {
	b, err := bootstrap(w, cfg, xdsTLS, probes)
	if err != nil {
		return nil, err
	}
	doc, err := envoy.ProtoYAML(b)
	if err != nil {
		return nil, err
	}
	return []string{"--config-yaml", string(doc), "--disable-hot-restart", "--log-level", "warning"}, nil
}

// bootstrap is the sidecar's bootstrap for the workload, with the pod's name and IP left as the
// $(…) references of podEnv.
func bootstrap(w workload, cfg Config, xdsTLS envoy.XDSClientTLS, probes []envoy.AppProbe) (*bootstrapv3.Bootstrap, error) {
	x, err := cfg.xds()
	if err != nil {
		return nil, err
	}
	return envoy.SidecarBootstrap(envoy.BootstrapOptions{
		XDSAddress: x.host, XDSPort: x.port,
		PodIP: ref(envPodIP), PodName: ref(envPodName), Namespace: w.namespace,
		Workload: w.app, Version: w.version, ServiceAccount: w.serviceAccount,
	}, envoy.SidecarOptions{
		XDSTLS: &xdsTLS,
		Probes: probes,
	})
}

// xdsClientTLS is the sidecar's mutual TLS to the xDS server: the identity Secret's files, through
// the SDS files sluice-init writes.
func xdsClientTLS(cfg Config) (envoy.XDSClientTLS, error) {
	x, err := cfg.xds()
	if err != nil {
		return envoy.XDSClientTLS{}, err
	}
	return envoy.XDSClientTLS{
		CertFile: path.Join(IdentityDir, corev1.TLSCertKey), KeyFile: path.Join(IdentityDir, corev1.TLSPrivateKeyKey),
		CAFile: path.Join(IdentityDir, "ca.crt"), ServerName: x.serverName, SDSDir: ProxyDir,
	}, nil
}

func proxyResources(cfg Config) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	cpu, err := resource.ParseQuantity(cfg.ProxyCPU)
	if err != nil {
		return r, err
	}
	mem, err := resource.ParseQuantity(cfg.ProxyMemory)
	if err != nil {
		return r, err
	}
	limit, err := resource.ParseQuantity(cfg.ProxyMemoryLimit)
	if err != nil {
		return r, err
	}
	r.Requests = corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
	r.Limits = corev1.ResourceList{corev1.ResourceMemory: limit}
	return r, nil
}

// identityVolume is the workload's identity Secret, which cert-manager writes for a ZeroTrust
// covering the pod. It is required: the sidecar cannot reach the xDS server without it, and the
// kubelet starts the pod once it exists.
func identityVolume(w workload) corev1.Volume {
	return corev1.Volume{Name: IdentityVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: zerotrust.CertificateName(w.serviceAccount),
	}}}
}
