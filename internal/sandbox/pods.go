package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/internal/testmesh"
	"github.com/sluice-mesh/sluice/internal/testprom"
	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/translate"
)

// DemoImage is the image the sandbox can run: a pod whose first container's image is
// sluice-demoapp (any tag) runs cmd/demoapp as a local process on the pod's IP. Pods of other
// images are Running for Kubernetes but nothing serves them.
const DemoImage = "sluice-demoapp"

// LoadgenImage marks the pod that stands for the demo's users, who run in the sandbox process:
// the pod gives them a service account and so an identity. Nothing runs for it.
const LoadgenImage = "sluice-loadgen:1.0"

// MetricsPort is where every demo pod serves /metrics; Prometheus scrapes it.
const MetricsPort = 9090

// startPod runs the process of one pod (testcluster's StartFunc).
func (s *Sandbox) startPod(ctx context.Context, pod *corev1.Pod) (func(), error) {
	if len(pod.Spec.Containers) == 0 {
		return nil, nil
	}
	c := pod.Spec.Containers[0]
	if c.Image == LoadgenImage {
		return nil, nil
	}
	if image, _, _ := strings.Cut(c.Image, ":"); image != DemoImage {
		fmt.Fprintf(s.opts.Log, "  pods: %s/%s: the sandbox runs only the %s image, not %s; nothing serves it\n",
			pod.Namespace, pod.Name, DemoImage, c.Image)
		return nil, nil
	}
	port := int32(8080)
	if len(c.Ports) > 0 {
		port = c.Ports[0].ContainerPort
	}
	env := []string{
		"POD_NAME=" + pod.Name,
		"POD_NAMESPACE=" + pod.Namespace,
		"POD_IP=" + pod.Status.PodIP,
		"PORT=" + strconv.Itoa(int(port)),
		"METRICS_PORT=" + strconv.Itoa(MetricsPort),
		"PATH=" + os.Getenv("PATH"),
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	podDir := filepath.Join(s.opts.StateDir, "pods", pod.Namespace+"_"+pod.Name)
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return nil, err
	}
	bootstrap, stopMounts, err := s.podBootstrap(ctx, pod, podDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			stopMounts()
		}
	}()
	env = append(env, "GRPC_XDS_BOOTSTRAP="+bootstrap)
	logFile, err := os.Create(filepath.Join(podDir, "app.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.opts.DemoApp)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("running %s: %w", s.opts.DemoApp, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }()
	stopProcess := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the app drains its calls, as a pod's container does
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port)))
	if err := waitListening(ctx, addr, exited); err != nil {
		stopProcess()
		return nil, fmt.Errorf("%s/%s: %w (see %s)", pod.Namespace, pod.Name, err, logFile.Name())
	}
	target := testprom.PodTarget{Namespace: pod.Namespace, Pod: pod.Name, Revision: pod.Labels[translate.RevisionLabel],
		Addr: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(MetricsPort))}
	if err := s.scrapes.Add(ctx, target); err != nil {
		fmt.Fprintf(s.opts.Log, "  pods: %s/%s: Prometheus will not scrape it: %v\n", pod.Namespace, pod.Name, err)
	}
	started = true
	return func() {
		_ = s.scrapes.Remove(context.Background(), target)
		stopProcess()
		stopMounts() // a stopped pod keeps the files it had
	}, nil
}

// podBootstrap writes the pod's GRPC_XDS_BOOTSTRAP, as the injector does: the demo app serves as
// a proxyless gRPC xDS server of the operator, with the pod's identity as its certificate, both
// on the xDS channel (mutual TLS, the only way to the operator) and in the data plane (mutual TLS
// when a STRICT ZeroTrust covers it). Like a pod whose identity Secret is not there yet, it waits
// for it. The identity files follow their Secret and ConfigMap until stopMounts is called.
func (s *Sandbox) podBootstrap(ctx context.Context, pod *corev1.Pod, dir string) (_ string, stopMounts func(), err error) {
	serviceAccount := pod.Spec.ServiceAccountName
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	files, stopMounts, err := s.MountIdentity(ctx, pod.Namespace, serviceAccount, dir)
	if err != nil {
		if covered, _ := s.needsIdentity(ctx, pod.Namespace); !covered {
			err = fmt.Errorf("%w; the pod's xDS client needs an identity to reach the operator: cover namespace %s with a ZeroTrust with spec.identity (or the whole mesh with one in %s)",
				err, pod.Namespace, OperatorNamespace)
		}
		return "", nil, err
	}
	nodeID := envoy.NodeID(envoy.FlavourGRPC, pod.Status.PodIP, pod.Name, pod.Namespace)
	bootstrap := testmesh.Bootstrap(XDSAddr, nodeID, testmesh.WithServerListenerTemplate(),
		testmesh.WithCertificates(*files), testmesh.WithMutualTLS(*files, pod.Namespace, serviceAccount))
	path := filepath.Join(dir, "grpc-bootstrap.json")
	if err := os.WriteFile(path, bootstrap, 0o644); err != nil {
		stopMounts()
		return "", nil, err
	}
	return path, stopMounts, nil
}

// waitListening waits until something accepts connections on addr.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the app exited before it listened on %s", addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after 10s", addr)
		}
	}
}
