package install_test

import (
	"flag"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice-mesh/sluice/internal/manager"
)

// The rendered names the parts of the install refer to each other by.
const (
	managerDeployment = "sluice-controller-manager"
	webhookService    = "sluice-webhook-service"
	xdsService        = "sluice-xds"
)

func managerPod(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	deploy := typed[appsv1.Deployment](t, find(t, "Deployment", installNamespace, managerDeployment))
	i := slices.IndexFunc(deploy.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatal("the manager Deployment has no container named manager")
	}
	return deploy, &deploy.Spec.Template.Spec.Containers[i]
}

// TestManagerDeployment checks what the install promises of the manager: replicas that survive a
// drain, leader election, probes, resources and a least-privilege container.
func TestManagerDeployment(t *testing.T) {
	deploy, c := managerPod(t)
	if n := *deploy.Spec.Replicas; n < 2 {
		t.Errorf("replicas = %d, want at least 2", n)
	}
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %v lack --leader-elect", c.Args)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("the manager needs liveness and readiness probes")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %v: want CPU and memory requests and a memory limit", c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the manager's root filesystem must be read-only")
	}
	if len(deploy.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Error("the replicas need a topology spread")
	}
	pdbs := ofKind("PodDisruptionBudget")
	if len(pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, got %d", len(pdbs))
	}
	selector := pdbs[0].Object["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any)
	for k, v := range selector {
		if deploy.Spec.Template.Labels[k] != v {
			t.Errorf("the PodDisruptionBudget selects %s=%v, which the manager's pods do not carry", k, v)
		}
	}
}

// TestManagerFlags parses the Deployment's arguments with the manager's own flags: a renamed or
// misspelt flag would stop the pod at start.
func TestManagerFlags(t *testing.T) {
	_, c := managerPod(t)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o manager.Options
	o.BindFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Errorf("the manager refuses its arguments %v: %v", c.Args, err)
	}
	if fs.NArg() > 0 {
		t.Errorf("stray arguments %v", fs.Args())
	}
}

// TestCertificatesFeedTheMountedSecrets: every Secret the manager mounts is written by one of the
// install's Certificates, which names the Service its server is reached by.
func TestCertificatesFeedTheMountedSecrets(t *testing.T) {
	deploy, _ := managerPod(t)
	wantHost := map[string]string{
		"webhook-server-cert": webhookService + "." + installNamespace + ".svc",
		"xds-server-tls":      xdsService + "." + installNamespace + ".svc",
	}
	mounted := map[string]bool{}
	for _, v := range deploy.Spec.Template.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		mounted[v.Secret.SecretName] = true
		crt := certificateWritingSecret(v.Secret.SecretName)
		if crt == nil {
			t.Errorf("no Certificate writes Secret %s, which volume %s mounts", v.Secret.SecretName, v.Name)
			continue
		}
		dnsNames, _, _ := unstructured.NestedStringSlice(crt.Object, "spec", "dnsNames")
		if host, ok := wantHost[v.Secret.SecretName]; ok && !slices.Contains(dnsNames, host) {
			t.Errorf("Certificate %s names %v, not the Service's %s", crt.GetName(), dnsNames, host)
		}
	}
	for name := range wantHost {
		if !mounted[name] {
			t.Errorf("the manager does not mount Secret %s", name)
		}
	}
}

func certificateWritingSecret(secret string) *unstructured.Unstructured {
	for _, crt := range ofKind("Certificate") {
		if name, _, _ := unstructured.NestedString(crt.Object, "spec", "secretName"); name == secret {
			return crt
		}
	}
	return nil
}

// TestServicesReachTheManager: each Service selects the manager's pods on a port the container
// declares and a NetworkPolicy opens.
func TestServicesReachTheManager(t *testing.T) {
	deploy, c := managerPod(t)
	policies := ofKind("NetworkPolicy")
	for _, obj := range ofKind("Service") {
		svc := typed[corev1.Service](t, obj)
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(deploy.Spec.Template.Labels)) {
			t.Errorf("Service %s selects %v, not the manager's pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() })
			if i < 0 {
				t.Errorf("Service %s's targetPort %s is no container port of the manager", svc.Name, p.TargetPort.String())
				continue
			}
			if !opened(t, policies, c.Ports[i].ContainerPort) {
				t.Errorf("no NetworkPolicy lets traffic reach port %d (Service %s)", c.Ports[i].ContainerPort, svc.Name)
			}
		}
	}
}

func opened(t *testing.T, policies []*unstructured.Unstructured, port int32) bool {
	for _, obj := range policies {
		np := typed[networkingv1.NetworkPolicy](t, obj)
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.IntVal == port {
					return true
				}
			}
		}
	}
	return false
}

// TestWebhooksCallTheManagerWithTheCA: each webhook calls the install's webhook Service, and its
// configuration asks cert-manager to inject the CA of the install's serving Certificate.
func TestWebhooksCallTheManagerWithTheCA(t *testing.T) {
	configs := append(ofKind("ValidatingWebhookConfiguration"), ofKind("MutatingWebhookConfiguration")...)
	if len(configs) == 0 {
		t.Fatal("config/default has no webhook configuration")
	}
	for _, obj := range configs {
		from := obj.GetAnnotations()["cert-manager.io/inject-ca-from"]
		ns, name, _ := strings.Cut(from, "/")
		if ns != installNamespace || certificateNamed(name) == nil {
			t.Errorf("%s %s: cert-manager.io/inject-ca-from %q names no Certificate of the install", obj.GetKind(), obj.GetName(), from)
		}
		var services []*admissionregistrationv1.ServiceReference
		switch obj.GetKind() {
		case "ValidatingWebhookConfiguration":
			for _, w := range typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, obj).Webhooks {
				services = append(services, w.ClientConfig.Service)
			}
		default:
			for _, w := range typed[admissionregistrationv1.MutatingWebhookConfiguration](t, obj).Webhooks {
				services = append(services, w.ClientConfig.Service)
			}
		}
		for _, s := range services {
			if s == nil || s.Namespace != installNamespace || s.Name != webhookService {
				t.Errorf("%s %s calls %+v, not Service %s/%s", obj.GetKind(), obj.GetName(), s, installNamespace, webhookService)
			}
		}
	}
}

func certificateNamed(name string) *unstructured.Unstructured {
	for _, crt := range ofKind("Certificate") {
		if crt.GetName() == name {
			return crt
		}
	}
	return nil
}

// TestOLMExtrasMatchTheDefaultInstall: config/olm's xDS Certificate is config/default's (same
// Secret, DNS names and issuer), so an OLM install serves xDS as a kustomize one does.
func TestOLMExtrasMatchTheDefaultInstall(t *testing.T) {
	var olmCert *unstructured.Unstructured
	for _, obj := range olmExtras {
		if obj.GetKind() == "Certificate" {
			olmCert = obj
		}
	}
	want := certificateWritingSecret("xds-server-tls")
	if olmCert == nil || want == nil {
		t.Fatalf("the xDS Certificate: config/olm has %v, config/default has %v", olmCert != nil, want != nil)
	}
	if !reflect.DeepEqual(olmCert.Object["spec"], want.Object["spec"]) {
		t.Errorf("config/olm's xDS Certificate differs from config/default's:\n%v\n%v", olmCert.Object["spec"], want.Object["spec"])
	}
}
