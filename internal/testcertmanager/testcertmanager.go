// Package testcertmanager runs the real cert-manager controllers against the test API server
// (internal/testenv), for tests of what Sluice does with certificates: SPIFFE workload
// certificates (ZeroTrust) and serving certificates (webhooks). Nothing of cert-manager is faked:
// hack/cert-manager.sh builds its controllers from the github.com/cert-manager/cert-manager module
// (hack/cert-manager/main.go starts them the way cert-manager's own command does) and copies the
// module's CRDs; New installs those CRDs and runs the controllers as a process.
//
// cert-manager's webhook does not run: objects are checked by the CRDs' OpenAPI schemas only, and
// a CertificateRequest's spec.username, uid and groups (which the webhook fills in) stay empty.
// The approver controller runs, so CertificateRequests for cert-manager.io issuers are approved as
// in a default installation. The CA and SelfSigned issuers are compiled in; ACME, Vault and
// Venafi are not.
//
// The main module does not import cert-manager's Go module: its objects are unstructured here
// (CertificateGVK and the others), as plain YAML would be.
package testcertmanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sluice-mesh/sluice/internal/proc"
	"github.com/sluice-mesh/sluice/internal/repo"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// DefaultControllers are the cert-manager controllers a CertManager runs when
// Options.Controllers is empty: every one the binary has, which is what a Certificate or a
// CertificateRequest needs to be issued by a CA or SelfSigned Issuer or ClusterIssuer.
var DefaultControllers = []string{
	"issuers",
	"clusterissuers",
	"certificaterequests-approver",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
	"certificates-trigger",
	"certificates-issuing",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-readiness",
	"certificates-revision-manager",
}

// DefaultClusterResourceNamespace is where ClusterIssuers' Secrets live (a CA ClusterIssuer's key
// pair) when Options.ClusterResourceNamespace is empty.
const DefaultClusterResourceNamespace = "cert-manager"

// binaryName is the controller binary in the directory hack/cert-manager.sh prints.
const binaryName = "cert-manager-controller"

// Options configure a CertManager. The zero value is ready to use.
type Options struct {
	// Dir holds the cert-manager-controller binary and crds/*.yaml; Dir() when empty.
	Dir string
	// Controllers are the controllers to run; DefaultControllers when empty.
	Controllers []string
	// ClusterResourceNamespace is where ClusterIssuers' Secrets live (cert-manager's
	// --cluster-resource-namespace); DefaultClusterResourceNamespace when empty. New creates it
	// when it does not exist.
	ClusterResourceNamespace string
	// MinimumBackoff is how long cert-manager waits before it tries again to issue a Certificate
	// whose issuance failed (--certificate-request-minimum-backoff-duration); cert-manager's
	// default, 1h, when zero.
	MinimumBackoff time.Duration
	// StartTimeout bounds Start, and New when its ctx has no deadline; 60s when zero.
	StartTimeout time.Duration
	// Verbosity is the controllers' klog level (--v). cert-manager logs errors at 0, warnings at
	// 1, what it does at 2 and debug at 4; 2 when zero, and 0 when negative.
	Verbosity int
}

// CertManager is the cert-manager controllers running against a test API server.
type CertManager struct {
	env  *testenv.Env
	opts Options
	// client is env's API server without client-side rate limiting, for CreateCA and the waits:
	// their polling does not take from the test's own client's budget, nor wait for it.
	client client.Client
	dir    string // temporary files
	proc   *proc.Process

	stopOnce sync.Once
	stopErr  error
}

var dir = sync.OnceValues(func() (string, error) { return repo.Tool("CERT_MANAGER_DIR", "cert-manager.sh") })

// Dir returns the directory of the cert-manager-controller binary and the CRDs: CERT_MANAGER_DIR
// when set, otherwise what hack/cert-manager.sh builds or finds in its cache.
func Dir() (string, error) { return dir() }

var (
	// running holds the environments that have a CertManager.
	runningMu sync.Mutex
	running   = map[*testenv.Env]bool{}
)

// Start runs cert-manager against env's API server for a test (see New) and stops it when the
// test ends, logging its output when the test failed. It skips the test in -short mode and fails
// it when cert-manager cannot start.
func Start(t testing.TB, env *testenv.Env, opts Options) *CertManager {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the cert-manager controllers; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout(opts))
	defer cancel()
	cm, err := New(ctx, env, opts)
	if err != nil {
		t.Fatalf("testcertmanager: %v", err)
	}
	t.Cleanup(func() {
		if err := cm.Stop(); err != nil {
			t.Errorf("testcertmanager: %v", err)
		} else if t.Failed() {
			t.Logf("testcertmanager: cert-manager said:\n%s", cm.Logs())
		}
	})
	return cm
}

// New installs cert-manager's CRDs into env's API server (waiting until they are served),
// creates the cluster resource namespace, runs the controllers and returns once their informers
// have synced and the API server takes creates of cert-manager's kinds at once (about 2s after
// the CRDs were first installed); ctx bounds the start only. Call Stop when done. One CertManager at a time may run
// per env (two would run two sets of controllers against one API server); a package whose tests
// share one starts it in TestMain. The CRDs stay installed after Stop.
func New(ctx context.Context, env *testenv.Env, opts Options) (_ *CertManager, err error) {
	if env == nil {
		return nil, errors.New("env is nil (start it with testenv.Start)")
	}
	if len(opts.Controllers) == 0 {
		opts.Controllers = DefaultControllers
	}
	if opts.ClusterResourceNamespace == "" {
		opts.ClusterResourceNamespace = DefaultClusterResourceNamespace
	}
	if opts.Verbosity == 0 {
		opts.Verbosity = 2
	}
	if opts.Dir == "" {
		if opts.Dir, err = Dir(); err != nil {
			return nil, fmt.Errorf("finding cert-manager: %w", err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout(opts))
		defer cancel()
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil // no client-side rate limiting
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("building a client: %w", err)
	}

	runningMu.Lock()
	if running[env] {
		runningMu.Unlock()
		return nil, errors.New("cert-manager already runs against this API server: share it, or stop it first")
	}
	running[env] = true
	runningMu.Unlock()

	cm := &CertManager{env: env, opts: opts, client: c}
	defer func() {
		if err != nil {
			logs := cm.Logs()
			_ = cm.Stop()
			if logs != "" {
				err = fmt.Errorf("%w\n%s", err, logs)
			}
		}
	}()
	createsFrom, err := installCRDs(ctx, env.Config, c, filepath.Join(opts.Dir, "crds"))
	if err != nil {
		return nil, err
	}
	if err := createNamespace(ctx, c, opts.ClusterResourceNamespace); err != nil {
		return nil, err
	}
	if cm.dir, err = os.MkdirTemp("", "sluice-testcertmanager-"); err != nil {
		return nil, err
	}
	if err := cm.start(ctx); err != nil {
		return nil, err
	}
	// Return once creates are answered at once, for the test and for the controllers.
	select {
	case <-time.After(time.Until(createsFrom)):
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for cert-manager's CRDs to take creates: %w", ctx.Err())
	}
	return cm, nil
}

func startTimeout(opts Options) time.Duration {
	if opts.StartTimeout == 0 {
		return 60 * time.Second
	}
	return opts.StartTimeout
}

// installCRDs creates (or updates) the CRDs in crdDir, waits until the API server serves them,
// and returns from when it answers creates of their objects without delay: for 2s after a CRD
// becomes Established (by its condition's lastTransitionTime, in whole seconds) the API server
// holds each create of its objects for 2s (k8s.io/apiextensions-apiserver's
// customresource_handler.go, so that in HA no other API server answers 404 to a follow-up), which
// would stall a test's first create of each kind, or the controllers'.
func installCRDs(ctx context.Context, cfg *rest.Config, c client.Client, crdDir string) (createsFrom time.Time, err error) {
	maxTime := 30 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		maxTime = time.Until(deadline)
	}
	crds, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths:              []string{crdDir},
		ErrorIfPathMissing: true,
		MaxTime:            maxTime,
		PollInterval:       50 * time.Millisecond,
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("installing cert-manager's CRDs from %s: %w", crdDir, err)
	}
	if len(crds) == 0 {
		return time.Time{}, fmt.Errorf("no CRDs in %s", crdDir)
	}
	for _, crd := range crds {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		if err := c.Get(ctx, types.NamespacedName{Name: crd.Name}, obj); err != nil {
			return time.Time{}, fmt.Errorf("reading CRD %s: %w", crd.Name, err)
		}
		established, ok := conditions(obj)["Established"]
		if !ok || established.status != "True" {
			return time.Time{}, fmt.Errorf("CRD %s is served but not Established", crd.Name)
		}
		if t := established.lastTransitionTime.Add(2 * time.Second); t.After(createsFrom) {
			createsFrom = t
		}
	}
	return createsFrom, nil
}

func createNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

func (cm *CertManager) start(ctx context.Context) error {
	readyFile := filepath.Join(cm.dir, "ready")
	args := []string{
		"--kubeconfig=" + cm.env.KubeconfigPath,
		"--controllers=" + strings.Join(cm.opts.Controllers, ","),
		"--cluster-resource-namespace=" + cm.opts.ClusterResourceNamespace,
		"--ready-file=" + readyFile,
		// Used only when the API server has no priority and fairness (envtest's has).
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
		fmt.Sprintf("--v=%d", max(cm.opts.Verbosity, 0)),
	}
	if cm.opts.MinimumBackoff > 0 {
		args = append(args, "--certificate-request-minimum-backoff-duration="+cm.opts.MinimumBackoff.String())
	}
	var err error
	cm.proc, err = proc.Start(proc.Options{Name: "cert-manager", Bin: filepath.Join(cm.opts.Dir, binaryName), Args: args})
	if err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(readyFile); err == nil {
			return nil
		}
		if err := cm.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cert-manager's informers not synced: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Attach returns a handle on a cert-manager that another process runs against c's API server
// (the sandbox's, say), for Renew and the Wait functions; its Err is always nil.
func Attach(c client.Client) *CertManager { return &CertManager{client: c} }

// ClusterResourceNamespace is where ClusterIssuers' Secrets live.
func (cm *CertManager) ClusterResourceNamespace() string { return cm.opts.ClusterResourceNamespace }

// Env is the API server cert-manager runs against.
func (cm *CertManager) Env() *testenv.Env { return cm.env }

// Err says whether the controller process has exited; nil while it runs.
func (cm *CertManager) Err() error {
	if cm.proc == nil {
		return nil
	}
	return cm.proc.ExitedEarly()
}

// Logs returns the command line and the last 256 KiB of the controllers' output, for failure
// messages.
func (cm *CertManager) Logs() string {
	p := cm.proc
	if p == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "----- %s: %s\n%s", p.Name(), p.CommandLine(), p.Logs())
	if err := p.ExitedEarly(); err != nil {
		fmt.Fprintf(&b, "----- %v\n", err)
	}
	return b.String()
}

// Stop ends the controller process (SIGTERM, then SIGKILL after 10s) and removes the temporary
// files. It returns an error, with the process's output, when the process had exited before. It
// is safe to call more than once.
func (cm *CertManager) Stop() error {
	cm.stopOnce.Do(func() {
		defer func() {
			runningMu.Lock()
			delete(running, cm.env)
			runningMu.Unlock()
		}()
		var errs []error
		if err := cm.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%w\n%s", err, cm.Logs()))
		}
		if cm.proc != nil {
			cm.proc.Stop(10 * time.Second)
		}
		if cm.dir != "" {
			if err := os.RemoveAll(cm.dir); err != nil {
				errs = append(errs, err)
			}
		}
		cm.stopErr = errors.Join(errs...)
	})
	return cm.stopErr
}
