package injection_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/webhooks/injection"
	"github.com/sluice-mesh/sluice/xds/envoy"
)

var injected = map[string]string{injection.LabelInject: injection.ValueEnabled}

// checkoutPod has a generated name (unknown at admission), probes on a named and a numbered
// port, and an init container of its own.
func checkoutPod(namespace string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, GenerateName: "checkout-",
			Labels:      map[string]string{"app": "checkout", "version": "v1"},
			Annotations: map[string]string{injection.AnnotationExcludeOutboundPorts: "5432"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "checkout",
			InitContainers:     []corev1.Container{{Name: "migrate", Image: "example.com/migrate:v1"}},
			Containers: []corev1.Container{{
				Name: "checkout", Image: "example.com/checkout:v1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready", Port: intstr.FromString("http"),
				}}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
			}},
		},
	}
}

func create(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if err := kube.Create(context.Background(), pod); err != nil {
		t.Fatalf("creating pod %s%s: %v", pod.Name, pod.GenerateName, err)
	}
	stored := &corev1.Pod{}
	if err := kube.Get(context.Background(), client.ObjectKeyFromObject(pod), stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

func initNames(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	return names
}

func TestPodInInjectedNamespaceGetsSidecar(t *testing.T) {
	ns := namespace(t, injected)
	pod := create(t, checkoutPod(ns))

	if got, want := initNames(pod), []string{injection.InitContainer, injection.ProxyContainer, "migrate"}; !slices.Equal(got, want) {
		t.Fatalf("init containers %v, want %v (capture, then the native sidecar, then the pod's own)", got, want)
	}
	proxy := pod.Spec.InitContainers[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("%s restartPolicy %v, want Always (a native sidecar)", proxy.Name, proxy.RestartPolicy)
	}
	if u := proxy.SecurityContext.RunAsUser; u == nil || *u != injection.ProxyUID {
		t.Errorf("%s runs as %v, want UID %d", proxy.Name, u, injection.ProxyUID)
	}
	if proxy.ReadinessProbe == nil || proxy.Resources.Requests.Cpu().IsZero() || proxy.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s lacks a readiness probe or resource requests", proxy.Name)
	}
	if !slices.Contains(pod.Spec.InitContainers[0].SecurityContext.Capabilities.Add, "NET_ADMIN") {
		t.Errorf("%s lacks NET_ADMIN", injection.InitContainer)
	}
	if pod.Annotations["prometheus.io/port"] != "15090" || pod.Annotations[injection.AnnotationInjected] != "envoy" {
		t.Errorf("annotations %v lack the scrape port or the injected mode", pod.Annotations)
	}
	for _, p := range []*corev1.Probe{pod.Spec.Containers[0].ReadinessProbe, pod.Spec.Containers[0].LivenessProbe} {
		if p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != envoy.DefaultHealthPort || !strings.HasPrefix(p.HTTPGet.Path, envoy.AppHealthPrefix) {
			t.Errorf("probe %+v was not moved to the sidecar's health listener", p.ProbeHandler)
		}
	}

	// The bootstrap as Envoy gets it once the kubelet has filled in the pod's name and IP.
	b, err := injection.ProxyBootstrap(pod, injection.PodFields{Name: pod.Name, Namespace: ns, IP: "10.244.1.5"})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := injection.ProxyFileSecrets(pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := envoy.ValidateBootstrap(b, secrets...); err != nil {
		t.Errorf("the injected bootstrap is not valid: %v", err)
	}
	if want := envoy.NodeID(envoy.FlavourEnvoy, "10.244.1.5", pod.Name, ns); b.GetNode().GetId() != want {
		t.Errorf("node id %q, want %q", b.GetNode().GetId(), want)
	}
	var secret string
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			secret = v.Secret.SecretName
		}
	}
	if secret != "sluice-identity-checkout" {
		t.Errorf("identity Secret volume %q, want sluice-identity-checkout", secret)
	}
}

// TestSecondMutationChangesNothing sends an injected pod through the webhook again: it comes
// back exactly as it went in.
func TestSecondMutationChangesNothing(t *testing.T) {
	ns := namespace(t, injected)
	first := create(t, checkoutPod(ns))

	again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: "again", Labels: first.Labels, Annotations: first.Annotations,
	}, Spec: *first.Spec.DeepCopy()}
	again.Spec.NodeName = ""
	sent := again.DeepCopy()
	if err := kube.Create(context.Background(), again, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(sent.Spec, again.Spec) || !equality.Semantic.DeepEqual(sent.Annotations, again.Annotations) {
		t.Errorf("the second pass changed the pod (-sent +returned):\n%s", cmp.Diff(sent.Spec, again.Spec))
	}
}

func TestOptOutIsHonoured(t *testing.T) {
	ns := namespace(t, injected)
	pod := checkoutPod(ns)
	pod.Annotations[injection.AnnotationInject] = "false"
	got := create(t, pod)
	if len(got.Spec.InitContainers) != 1 || got.Annotations[injection.AnnotationInjected] != "" {
		t.Errorf("an opted-out pod was injected: init containers %v, annotations %v", initNames(got), got.Annotations)
	}
	if got.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.StrVal != "http" {
		t.Error("an opted-out pod's probe was rewritten")
	}
}

func TestProxylessModeMountsFiles(t *testing.T) {
	ns := namespace(t, nil) // the pod opts in by itself
	pod := checkoutPod(ns)
	pod.Annotations[injection.AnnotationInject] = "true"
	pod.Annotations[injection.AnnotationMode] = string(injection.ModeGRPC)
	got := create(t, pod)

	if len(got.Spec.InitContainers) != 1 {
		t.Errorf("proxyless mode added init containers: %v", initNames(got))
	}
	c := got.Spec.Containers[0]
	doc, err := injection.ProxylessBootstrap(c, injection.PodFields{Name: got.Name, Namespace: ns, IP: "10.244.1.6"})
	if err != nil {
		t.Fatal(err)
	}
	var bootstrap struct {
		XDSServers []struct {
			ChannelCreds []struct{ Type string } `json:"channel_creds"`
		} `json:"xds_servers"`
		Node      struct{ ID string } `json:"node"`
		Providers map[string]struct {
			Config map[string]string `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal([]byte(doc), &bootstrap); err != nil {
		t.Fatalf("the bootstrap is not JSON: %v\n%s", err, doc)
	}
	if want := envoy.NodeID(envoy.FlavourGRPC, "10.244.1.6", got.Name, ns); bootstrap.Node.ID != want {
		t.Errorf("node id %q, want %q", bootstrap.Node.ID, want)
	}
	if len(bootstrap.XDSServers) != 1 || bootstrap.XDSServers[0].ChannelCreds[0].Type != "tls" {
		t.Errorf("the xDS server is not reached over TLS: %s", doc)
	}
	files := bootstrap.Providers[envoy.CertificateProviderInstance].Config
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, f := range []string{files["certificate_file"], files["private_key_file"], files["ca_certificate_file"]} {
		dir := f[:strings.LastIndex(f, "/")]
		if mounts[dir] == "" {
			t.Errorf("the file_watcher file %s is in no mounted volume (mounts %v)", f, mounts)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range got.Spec.Volumes {
		volumes[v.Name] = v
	}
	if v := volumes[injection.IdentityVolume]; v.Secret == nil || v.Secret.SecretName != "sluice-identity-checkout" {
		t.Errorf("identity volume %+v, want Secret sluice-identity-checkout", v.VolumeSource)
	}
	if v := volumes[injection.TrustVolume]; v.ConfigMap == nil || v.ConfigMap.Name != zerotrust.TrustBundleName {
		t.Errorf("trust bundle volume %+v, want ConfigMap %s", v.VolumeSource, zerotrust.TrustBundleName)
	}
}

func TestBadAnnotationIsRefusedByName(t *testing.T) {
	ns := namespace(t, injected)
	pod := checkoutPod(ns)
	pod.Annotations[injection.AnnotationExcludeOutboundCIDRs] = "10.0.0.0/33"
	err := kube.Create(context.Background(), pod)
	if err == nil || !strings.Contains(err.Error(), injection.AnnotationExcludeOutboundCIDRs) {
		t.Fatalf("error %v, want a refusal naming %s", err, injection.AnnotationExcludeOutboundCIDRs)
	}
	t.Logf("the user sees: %v", err)
}

// TestUnreachableInjectorDoesNotBlockPods points the installed webhook at a port where nothing
// listens, as when the operator is down: pods are still created, uninjected, and carry no
// injected annotation, which is how docs/injection.md finds them.
func TestUnreachableInjectorDoesNotBlockPods(t *testing.T) {
	ns := namespace(t, injected)
	ctx := context.Background()
	list := &admissionregistrationv1.MutatingWebhookConfigurationList{}
	if err := kube.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	var cfg *admissionregistrationv1.MutatingWebhookConfiguration
	var hook *admissionregistrationv1.MutatingWebhook
	for i := range list.Items {
		for j := range list.Items[i].Webhooks {
			if list.Items[i].Webhooks[j].Name == "inject.mesh.sluice.dev" {
				cfg, hook = &list.Items[i], &list.Items[i].Webhooks[j]
			}
		}
	}
	if hook == nil {
		t.Fatal("the injection webhook is not installed")
	}
	if hook.FailurePolicy == nil || *hook.FailurePolicy != admissionregistrationv1.Ignore {
		t.Fatalf("failure policy %v, want Ignore", hook.FailurePolicy)
	}
	saved := hook.ClientConfig.DeepCopy()
	hook.ClientConfig.URL = ptr.To("https://127.0.0.1:1/mutate-v1-pod")
	if err := kube.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		restored := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(cfg), restored); err != nil {
			t.Error(err)
			return
		}
		for i := range restored.Webhooks {
			if restored.Webhooks[i].Name == hook.Name {
				restored.Webhooks[i].ClientConfig = *saved
			}
		}
		if err := kube.Update(ctx, restored); err != nil {
			t.Error(err)
		}
	})

	got := create(t, simplePod(ns, "created-while-down"))
	if len(got.Spec.InitContainers) != 0 || got.Annotations[injection.AnnotationInjected] != "" {
		t.Errorf("the pod was changed although the injector was unreachable: %v", initNames(got))
	}
}
