// Package sandbox runs a local Kubernetes with the mesh in it, without Docker or a cluster: the
// real kube-apiserver and etcd (internal/testenv), kube-controller-manager, kube-scheduler and
// kwok for pods (internal/testcluster), a local process per demo pod on the pod's own IP
// (internal/podnet makes pod IPs local), a real Prometheus scraping the pods, cert-manager, and
// the Sluice operator. cmd/sluice-sandbox drives it (make demo, make sandbox, exec).
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/sluice-mesh/sluice/internal/manager"
	"github.com/sluice-mesh/sluice/internal/remoteexec"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testcluster"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/internal/testprom"
)

// Addresses inside the sandbox's network namespace.
const (
	// XDSAddr is where the operator serves xDS to the pods and the demo's clients.
	XDSAddr = "127.0.0.1:15010"
	// ServiceCIDR holds the Services' cluster IPs (envtest's default holds only 253).
	ServiceCIDR = "10.96.0.0/16"
	// CAIssuer names the CA ClusterIssuer the sandbox creates for workload identities.
	CAIssuer = "sluice-ca"
	// OperatorNamespace is the operator's namespace: a ZeroTrust there covers the whole mesh.
	OperatorNamespace = "sluice-system"
)

// Options configure a Sandbox.
type Options struct {
	// StateDir holds what a user needs from outside: kubeconfig, grpc-bootstrap.json, logs.
	StateDir string
	// DemoApp is the demoapp binary run for pods of the demo image.
	DemoApp string
	// APIServerListener, when set, is a listener on the host's network (podnet.HostListeners)
	// that is proxied to the API server, so kubectl outside the sandbox reaches it; the
	// kubeconfig in StateDir then points at it.
	APIServerListener net.Listener
	// Log receives the sandbox's own messages (pods started and stopped, problems).
	Log io.Writer
	// ClientBootstrap is written to StateDir/grpc-bootstrap.json, for a user's proxyless gRPC
	// client inside the sandbox (sluice-sandbox exec); when empty, one with the operator's
	// address and an identity of its own, spiffe://cluster.local/ns/default/sa/sandbox-client.
	ClientBootstrap []byte
}

// Sandbox is a running sandbox.
type Sandbox struct {
	opts        Options
	Env         *testenv.Env
	Client      client.Client
	Cluster     *testcluster.Cluster
	Prom        *testprom.Server
	CertManager *testcertmanager.CertManager
	Operator    *testmesh.Operator

	ca            *testcertmanager.CA
	watcher       client.WithWatch // follows the Secrets written as files
	following     context.Context  // ends when the sandbox stops following them
	stopFollowing context.CancelFunc
	scrapes       *testprom.PodTargets
	opLog         *os.File
	pods          *testcluster.Runtime
	proxy         *hostProxy
	execs         *remoteexec.Server
}

// Start starts every part and returns once the mesh is ready for workloads. Call Stop when done,
// also after an error (it stops what had started). It must run inside podnet.
func Start(ctx context.Context, opts Options) (_ *Sandbox, err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, err
	}
	// The operator's log goes to a file: the terminal is for the story.
	opLog, err := os.Create(filepath.Join(opts.StateDir, "operator.log"))
	if err != nil {
		return nil, err
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(opLog)))
	s := &Sandbox{opts: opts, scrapes: testprom.NewPodTargets(), opLog: opLog}
	s.following, s.stopFollowing = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	step := func(what string, f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		fmt.Fprintf(opts.Log, "  %-44s %5.1fs\n", what, time.Since(start).Seconds())
		return nil
	}
	if err := step("kube-apiserver and etcd", func() (err error) {
		s.Env, err = testenv.StartWith(testenv.Options{ServiceClusterIPRange: ServiceCIDR})
		return err
	}); err != nil {
		return nil, err
	}
	s.Client = s.Env.Client
	if s.watcher, err = client.NewWithWatch(s.Env.Config, client.Options{Scheme: s.Client.Scheme()}); err != nil {
		return nil, err
	}
	if err := step("kube-controller-manager, kube-scheduler, kwok", func() (err error) {
		s.Cluster, err = testcluster.New(ctx, s.Env, testcluster.Options{})
		return err
	}); err != nil {
		return nil, err
	}
	if err := step("Prometheus", func() (err error) {
		if s.Prom, err = testprom.Start(ctx, testprom.Options{ScrapeInterval: time.Second, JobName: "sluice-pods"}); err != nil {
			return err
		}
		return s.scrapes.Watch(ctx, s.Prom)
	}); err != nil {
		return nil, err
	}
	if err := step("cert-manager and a CA ClusterIssuer", func() (err error) {
		if s.CertManager, err = testcertmanager.New(ctx, s.Env, testcertmanager.Options{}); err != nil {
			return err
		}
		s.ca, err = s.CertManager.CreateCA(ctx, CAIssuer)
		return err
	}); err != nil {
		return nil, err
	}
	if err := step("Sluice operator, xDS over mutual TLS", func() error {
		tlsDir, err := s.serveXDSCertificate(ctx)
		if err != nil {
			return fmt.Errorf("the xDS server certificate: %w", err)
		}
		s.Operator, err = testmesh.StartOperator(s.Env.Config, manager.Options{
			XDSAddr:           XDSAddr,
			XDSTLSDir:         tlsDir,
			Namespace:         OperatorNamespace,
			PrometheusAddress: s.Prom.URL(),
			GracefulShutdown:  5 * time.Second,
		})
		return err
	}); err != nil {
		return nil, err
	}
	s.pods = s.Cluster.Run("", s.startPod, func(format string, args ...any) {
		fmt.Fprintf(opts.Log, "  pods: "+format+"\n", args...)
	})
	if err := s.writeState(ctx); err != nil {
		return nil, err
	}
	s.serveExec()
	return s, nil
}

// writeState writes the kubeconfig (for the host when there is an API server listener) and the
// gRPC bootstrap.
func (s *Sandbox) writeState(ctx context.Context) error {
	server := s.Env.Config.Host
	if l := s.opts.APIServerListener; l != nil {
		s.proxy = startHostProxy(l, hostOf(server))
		server = "https://" + l.Addr().String()
	}
	kubeconfig, err := s.Env.KubeconfigFor(server)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.opts.StateDir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		return err
	}
	bootstrap := s.opts.ClientBootstrap
	if len(bootstrap) == 0 {
		if bootstrap, err = s.clientBootstrap(ctx); err != nil {
			return fmt.Errorf("the client identity of grpc-bootstrap.json: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(s.opts.StateDir, "grpc-bootstrap.json"), bootstrap, 0o644)
}

// Kubeconfig is the path of the kubeconfig file for the sandbox's API server.
func (s *Sandbox) Kubeconfig() string { return filepath.Join(s.opts.StateDir, "kubeconfig") }

// Stop stops every part, the users' programs and the pods first.
func (s *Sandbox) Stop() {
	s.stopExecs()
	s.stopFollowing()
	if s.pods != nil {
		s.pods.Stop()
	}
	if s.proxy != nil {
		s.proxy.stop()
	}
	if s.Operator != nil {
		s.Operator.Stop()
	}
	var errs []error
	if s.Prom != nil {
		errs = append(errs, s.Prom.Stop())
	}
	if s.CertManager != nil {
		errs = append(errs, s.CertManager.Stop())
	}
	if s.Cluster != nil {
		errs = append(errs, s.Cluster.Stop())
	}
	if s.Env != nil {
		errs = append(errs, s.Env.Stop())
	}
	if s.opLog != nil {
		errs = append(errs, s.opLog.Close())
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(s.opts.Log, "  stopping:", err)
	}
}
