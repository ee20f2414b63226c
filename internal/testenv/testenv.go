// Package testenv starts a real Kubernetes API server (envtest: etcd and kube-apiserver built by
// hack/envtest.sh) with Sluice's CRDs installed, for tests that claim behaviour of the system.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/repo"
)

// Env is a running API server with a client and a kubeconfig for it.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client with Sluice's scheme.
	Client client.Client
	// KubeconfigPath is a kubeconfig file for the API server, for kubectl.
	KubeconfigPath string
	// AssetsDir holds the control-plane binaries, kubectl among them.
	AssetsDir string

	// Webhooks is where the webhook server the installed configurations call must listen, and
	// its certificate (CertDir); nil unless Options.WebhookConfigs named some.
	Webhooks *envtest.WebhookInstallOptions

	env *envtest.Environment
	tmp string
}

// Assets returns the directory of the control-plane binaries: KUBEBUILDER_ASSETS when set,
// otherwise what hack/envtest.sh builds or finds in its cache.
func Assets() (string, error) { return repo.Tool("KUBEBUILDER_ASSETS", "envtest.sh") }

// Options change the API server Start runs.
type Options struct {
	// ServiceClusterIPRange replaces envtest's default Service range, which holds only 253
	// Services (10.0.0.0/24).
	ServiceClusterIPRange string
	// WebhookConfigs are files or directories of webhook configurations (such as
	// config/webhook/manifests.yaml) to install, pointing at a webhook server on 127.0.0.1 with a
	// certificate the API server trusts: see Env.Webhooks and Env.ServeWebhooks.
	WebhookConfigs []string
	// AdmissionPlugins are enabled on top of the API server's defaults, e.g.
	// OwnerReferencesPermissionEnforcement, which some clusters (OpenShift) run.
	AdmissionPlugins []string
}

// Start starts etcd and kube-apiserver with Sluice's CRDs installed. Call Stop when done.
func Start() (*Env, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(opts Options) (*Env, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(repo.Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if len(opts.WebhookConfigs) > 0 {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: opts.WebhookConfigs, LocalServingHost: "127.0.0.1"}
	}
	if opts.ServiceClusterIPRange != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", opts.ServiceClusterIPRange)
	}
	if len(opts.AdmissionPlugins) > 0 {
		env.ControlPlane.GetAPIServer().Configure().Set("enable-admission-plugins", strings.Join(opts.AdmissionPlugins, ","))
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the test API server: %w", err)
	}
	e := &Env{Config: cfg, AssetsDir: assets, env: env}
	if len(opts.WebhookConfigs) > 0 {
		e.Webhooks = &env.WebhookInstallOptions
	}
	if err := e.init(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) init() error {
	c, err := client.New(e.Config, client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return fmt.Errorf("building a client: %w", err)
	}
	e.Client = c

	e.tmp, err = os.MkdirTemp("", "sluice-testenv-")
	if err != nil {
		return err
	}
	e.KubeconfigPath = filepath.Join(e.tmp, "kubeconfig")
	return os.WriteFile(e.KubeconfigPath, e.env.KubeConfig, 0o600)
}

// Kubectl runs the kubectl built beside the API server against it and returns its combined output.
func (e *Env) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(e.AssetsDir, "kubectl"), append([]string{"--kubeconfig", e.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Stop stops the API server and removes the temporary files.
func (e *Env) Stop() error {
	if e.tmp != "" {
		_ = os.RemoveAll(e.tmp)
	}
	return e.env.Stop()
}

// KubeconfigFor returns the kubeconfig of the API server with its address replaced by server
// (https://host:port), for a client that reaches it through a proxy; the certificates stay valid
// as long as the host is one the serving certificate names (127.0.0.1 or localhost).
func (e *Env) KubeconfigFor(server string) ([]byte, error) {
	cfg, err := clientcmd.Load(e.env.KubeConfig)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	return clientcmd.Write(*cfg)
}

// ServiceAccountToken creates service account namespace/name bound to each of roles (ClusterRoles,
// created unless they exist) and returns a token for it, for tests that call what the API
// server's authentication and authorization guard (the operator's metrics and debug pages).
func (e *Env) ServiceAccountToken(ctx context.Context, namespace, name string, roles ...*rbacv1.ClusterRole) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if err := e.Client.Create(ctx, sa); err != nil {
		return "", err
	}
	for _, role := range roles {
		if err := e.Client.Create(ctx, role.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%s", namespace, name, role.Name)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
		}
		if err := e.Client.Create(ctx, binding); err != nil {
			return "", err
		}
	}
	tr := &authenticationv1.TokenRequest{}
	if err := e.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// ClusterRoleFile reads the ClusterRole of config/rbac/<file>.
func ClusterRoleFile(file string) (*rbacv1.ClusterRole, error) {
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "rbac", file))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	return role, yaml.UnmarshalStrict(data, role)
}
