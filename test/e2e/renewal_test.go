package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/controllers/zerotrust"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// renewGreeterIdentity has cert-manager renew the greeter's identity while a user's client calls
// the greeter again and again (each run a new connection, so a new handshake): every running
// greeter pod's tls.crt must change within a few seconds, as a kubelet's volume does, and no call
// may fail.
func renewGreeterIdentity(t *testing.T, sandbox, state string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(state, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("demo")); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{} // the tls.crt of each running greeter pod
	for _, pod := range pods.Items {
		if pod.Spec.ServiceAccountName != "greeter" || pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		path := filepath.Join(state, "pods", pod.Namespace+"_"+pod.Name, corev1.TLSCertKey)
		if before[path], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	if len(before) == 0 {
		t.Fatal("no running greeter pod")
	}

	calls := &callLoop{sandbox: sandbox, state: state}
	stop := calls.start()
	time.Sleep(2 * time.Second) // calls before the renewal, too
	renewed := time.Now()
	secret, err := testcertmanager.Attach(c).Renew(ctx, "demo", zerotrust.CertificateName("greeter"))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	issued := time.Now() // Renew returns once the Secret holds the new certificate
	testmesh.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		for path := range before {
			got, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, secret.Data[corev1.TLSCertKey]) {
				return fmt.Errorf("%s does not hold the renewed certificate yet", path)
			}
		}
		return nil
	})
	written := time.Now()
	time.Sleep(3 * time.Second) // past file_watcher's refresh: the servers present the new certificate
	runs, answered, failures := stop()
	t.Logf("renewal: Secret issued %v after the trigger; %d pods' files seen rewritten %v after the trigger; %d client runs, %d calls answered, %d failures",
		issued.Sub(renewed).Round(time.Millisecond), len(before), written.Sub(renewed).Round(time.Millisecond), runs, answered, len(failures))
	if len(failures) > 0 {
		t.Errorf("calls failed across the renewal:\n%s", strings.Join(failures, "\n"))
	}
	if answered == 0 {
		t.Error("no call answered")
	}
}

// callLoop runs `exec -- demoapp call -n 20` again and again until stopped.
type callLoop struct {
	sandbox, state string
	mu             sync.Mutex
	runs, answered int
	failures       []string
}

func (l *callLoop) start() (stop func() (runs, answered int, failures []string)) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			out, err := exec.Command(l.sandbox, "-state", l.state, "exec", "--", filepath.Join(filepath.Dir(l.sandbox), "demoapp"),
				"call", "-n", "20", "xds:///greeter.demo.svc.cluster.local:8080").CombinedOutput()
			l.mu.Lock()
			l.runs++
			if err != nil || !strings.Contains(string(out), "20/20 answered") {
				l.failures = append(l.failures, fmt.Sprintf("run %d: %v\n%s", l.runs, err, out))
			} else {
				l.answered += 20
			}
			l.mu.Unlock()
		}
	}()
	return func() (int, int, []string) {
		close(done)
		<-finished
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.runs, l.answered, l.failures
	}
}
