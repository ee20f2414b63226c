// Command cert-manager-controller runs cert-manager's own controllers (the packages under
// github.com/cert-manager/cert-manager/pkg/controller, which register themselves with
// controllerpkg.Register when imported) against a kubeconfig, for Sluice's tests
// (internal/testcertmanager). hack/cert-manager.sh builds it.
//
// cert-manager's own command (cmd/controller) is a separate Go module that the module proxy does
// not serve, and it needs cert-manager's internal packages, so this is a small equivalent of its
// app.Run: the same ContextFactory, the same controllers, started the same way, without leader
// election, the metrics, health and profiling servers, or the configuration file. Only the CA and
// SelfSigned issuers are compiled in (no ACME, Vault or Venafi), and only their controllers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	logsapi "k8s.io/component-base/logs/api/v1"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// The issuer implementations the issuers and clusterissuers controllers set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// defaultControllers are every controller compiled in: what a Certificate or a CertificateRequest
// needs to be issued by a CA or SelfSigned Issuer or ClusterIssuer, the approver included
// (cert-manager signs only approved CertificateRequests).
var defaultControllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	approver.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
	trigger.ControllerName,
	issuing.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

type options struct {
	kubeconfig               string
	controllers              []string
	namespace                string
	clusterResourceNamespace string
	qps                      float32
	burst                    int
	workers                  int
	readyFile                string
	minBackoff, maxBackoff   time.Duration
	version                  bool
	logging                  *logsapi.LoggingConfiguration
}

func main() { os.Exit(runMain()) }

func runMain() int {
	logf.InitLogs()
	defer logf.FlushLogs()

	o := options{logging: logsapi.NewLoggingConfiguration()}
	fs := pflag.NewFlagSet("cert-manager-controller", pflag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server (empty: in-cluster config)")
	fs.StringSliceVar(&o.controllers, "controllers", defaultControllers, "controllers to run (compiled in: "+strings.Join(defaultControllers, ",")+")")
	fs.StringVar(&o.namespace, "namespace", "", "namespace to watch (empty: all; the clusterissuers controller needs all)")
	fs.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "kube-system", "namespace of the Secrets ClusterIssuers refer to")
	fs.Float32Var(&o.qps, "kube-api-qps", 20, "client QPS when the API server has no priority and fairness")
	fs.IntVar(&o.burst, "kube-api-burst", 50, "client burst when the API server has no priority and fairness")
	fs.IntVar(&o.workers, "concurrent-workers", 5, "workers per controller")
	fs.StringVar(&o.readyFile, "ready-file", "", "file to create once the controllers run and the informers have synced")
	fs.DurationVar(&o.minBackoff, "certificate-request-minimum-backoff-duration", time.Hour, "first wait before a failed issuance is tried again")
	fs.DurationVar(&o.maxBackoff, "certificate-request-maximum-backoff-duration", 32*time.Hour, "longest wait before a failed issuance is tried again")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	utilfeature.DefaultMutableFeatureGate.AddFlag(fs)
	logf.AddFlags(o.logging, fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.version {
		fmt.Printf("cert-manager controller %s (%s)\n", util.AppVersion, util.VersionInfo().GoVersion)
		return 0
	}
	if err := logf.ValidateAndApply(o.logging); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	if err := run(ctx, o); err != nil {
		logf.Log.Error(err, "cert-manager controller failed")
		return 1
	}
	return 0
}

func run(rootCtx context.Context, o options) error {
	log := logf.FromContext(rootCtx)
	for _, name := range o.controllers {
		if _, ok := controllerpkg.Known()[name]; !ok {
			return fmt.Errorf("unknown controller %q (compiled in: %s)", name, strings.Join(defaultControllers, ","))
		}
	}
	if o.namespace != "" && slices.Contains(o.controllers, clusterissuers.ControllerName) {
		return fmt.Errorf("the %s controller needs every namespace: leave --namespace empty or drop it", clusterissuers.ControllerName)
	}
	log.Info("starting cert-manager controller", "version", util.AppVersion, "controllers", o.controllers)

	factory, err := controllerpkg.NewContextFactory(rootCtx, controllerpkg.ContextOptions{
		Kubeconfig:         o.kubeconfig,
		KubernetesAPIQPS:   o.qps,
		KubernetesAPIBurst: o.burst,
		Namespace:          o.namespace,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: o.clusterResourceNamespace,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			// cert-manager's defaults for these.
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: o.minBackoff,
			CertificateRequestMaximumBackoffDuration: o.maxBackoff,
		},
	})
	if err != nil {
		return err
	}
	cmctx, err := factory.Build()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(rootCtx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range o.controllers {
		iface, err := controllerpkg.Known()[name](factory)
		if err != nil {
			cancel()
			return errors.Join(fmt.Errorf("setting up controller %s: %w", name, err), g.Wait())
		}
		g.Go(func() error {
			if err := iface.Run(o.workers, ctx); err != nil {
				return fmt.Errorf("controller %s: %w", name, err)
			}
			return nil
		})
	}
	// The controllers' constructors asked the factories for their informers; start them now.
	cmctx.SharedInformerFactory.Start(ctx.Done())
	cmctx.KubeSharedInformerFactory.Start(ctx.Done())
	cmctx.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())

	g.Go(func() error {
		synced := map[string]bool{}
		for t, ok := range cmctx.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			synced[t.String()] = ok
		}
		for t, ok := range cmctx.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
			synced[t] = ok
		}
		select {
		case <-ctx.Done():
			return nil // stopping before the caches synced: not an error
		default:
		}
		for t, ok := range synced {
			if !ok {
				return fmt.Errorf("informer for %s did not sync", t)
			}
		}
		log.Info("controllers started and informers synced")
		if o.readyFile != "" {
			return os.WriteFile(o.readyFile, []byte("ready\n"), 0o600)
		}
		return nil
	})

	err = g.Wait()
	cmctx.HTTP01ResourceMetadataInformersFactory.Shutdown()
	cmctx.KubeSharedInformerFactory.Shutdown()
	cmctx.SharedInformerFactory.Shutdown()
	if err != nil {
		return err
	}
	log.Info("control loops exited")
	return nil
}
