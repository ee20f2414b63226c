package kubectlsluice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// The operator's debug pages (xds/server.Debug*Path), on its metrics endpoint.
const (
	debugProxiesPath = "/debug/xds/proxies"
	debugNACKsPath   = "/debug/xds/nacks"
	debugConfigPath  = "/debug/xds/config"
)

// operatorFlags say how to reach the operator's metrics endpoint.
type operatorFlags struct {
	url       string
	namespace string
	selector  string
	port      int
	caFile    string
}

func (o *operatorFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&o.url, "operator-url", "", "Reach one operator replica's metrics endpoint directly (https://host:8443) instead of through the API server")
	fs.StringVar(&o.namespace, "operator-namespace", "sluice-system", "Namespace of the operator's pods")
	fs.StringVar(&o.selector, "operator-selector", "app.kubernetes.io/name=sluice,app.kubernetes.io/component=controller-manager", "Labels of the operator's pods")
	fs.IntVar(&o.port, "operator-port", 8443, "The operator pods' metrics port")
	fs.StringVar(&o.caFile, "operator-ca", "", "CA file to verify the operator's serving certificate with; without it the certificate is not verified")
}

// replica is one operator replica's debug pages, reachable at base.
type replica struct {
	name string // the pod, or the URL given
	base string
	http *http.Client
	// token authenticates to the operator, which checks it with a TokenReview and authorizes the
	// path with a SubjectAccessReview.
	token string
	// forwardedPort is the pod's port a port-forward reaches; 0 for --operator-url.
	forwardedPort int
}

// replicas reaches every ready operator replica: the URL given, or a port-forward through the API
// server to each ready operator pod. The API server's service proxy cannot be used: it drops the
// Authorization header the operator authenticates callers by. close ends the forwards.
func (e *env) replicas(ctx context.Context, o operatorFlags) (reps []replica, closeAll func(), err error) {
	cfg, err := e.restConfig()
	if err != nil {
		return nil, nil, err
	}
	token, err := bearerToken(cfg)
	if err != nil {
		return nil, nil, err
	}
	hc, err := operatorHTTPClient(o.caFile)
	if err != nil {
		return nil, nil, err
	}
	if o.url != "" {
		return []replica{{name: o.url, base: strings.TrimSuffix(o.url, "/"), http: hc, token: token}}, func() {}, nil
	}
	k, err := newKube(cfg)
	if err != nil {
		return nil, nil, err
	}
	sel, err := labelSelector(o.selector)
	if err != nil {
		return nil, nil, err
	}
	var pods corev1.PodList
	if err := list(ctx, k.core, "pods", o.namespace, &pods, "labelSelector", sel.String()); err != nil {
		return nil, nil, fmt.Errorf("listing the operator's pods in %s: %w", o.namespace, err)
	}
	var stops []func()
	closeAll = func() {
		for _, stop := range stops {
			stop()
		}
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	for _, pod := range pods.Items {
		if !podReady(&pod) {
			continue
		}
		local, stop, err := forward(cfg, &pod, o.port)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("port-forward to %s/%s:%d: %w", pod.Namespace, pod.Name, o.port, err)
		}
		stops = append(stops, stop)
		reps = append(reps, replica{name: pod.Name, base: "https://" + local, http: hc, token: token, forwardedPort: o.port})
	}
	if len(reps) == 0 {
		return nil, nil, fmt.Errorf("no ready operator pod in namespace %s with labels %s (--operator-namespace, --operator-selector, or --operator-url)", o.namespace, o.selector)
	}
	return reps, closeAll, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// bearerToken is the kubeconfig's token: the operator's metrics endpoint authenticates tokens only.
func bearerToken(cfg *rest.Config) (string, error) {
	if cfg.BearerToken != "" {
		return cfg.BearerToken, nil
	}
	if cfg.BearerTokenFile != "" {
		data, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(data)), nil
	}
	return "", fmt.Errorf("the operator's debug pages authenticate bearer tokens, and this kubeconfig user has none: " +
		"pass --token (for example `--token \"$(kubectl create token NAME)\"` for a service account bound to the xds-debug-reader ClusterRole)")
}

func operatorHTTPClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		// The operator serves a self-signed certificate unless given one; the port-forward
		// already reaches the pod the API server chose, over the API server's authenticated tunnel.
		tc.InsecureSkipVerify = true //nolint:gosec // documented: --operator-ca verifies
	} else {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--operator-ca %s holds no PEM certificate", caFile)
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

// forward opens a port-forward through the API server to the pod's port, on a free local port.
func forward(cfg *rest.Config, pod *corev1.Pod, port int) (string, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, err
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return "", nil, err
	}
	u.Path = path.Join(u.Path, "api/v1/namespaces", pod.Namespace, "pods", pod.Name, "portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", nil, err
	}
	failed := make(chan error, 1)
	go func() { failed <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-failed:
		return "", nil, err
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		close(stop)
		return "", nil, fmt.Errorf("no local port: %w", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), func() { close(stop) }, nil
}

// get fetches a debug page as JSON into v.
func (r replica) get(ctx context.Context, path string, query url.Values, v any) error {
	u := r.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.http.Do(req)
	if err != nil && r.forwardedPort != 0 {
		// The forward only says EOF when the pod's port refuses it; the cause goes to the log.
		return fmt.Errorf("operator pod %s: no answer through the port-forward to its port %d (%w): is the operator serving its metrics there (--operator-port)?", r.name, r.forwardedPort, err)
	}
	if err != nil {
		return fmt.Errorf("operator %s: %w", r.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return json.Unmarshal(body, v)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("operator %s refused %s (%s): the token's user needs the xds-debug-reader ClusterRole (nonResourceURLs /debug/xds/*)", r.name, path, resp.Status)
	}
	return fmt.Errorf("operator %s: GET %s: %s: %s", r.name, path, resp.Status, strings.TrimSpace(string(body)))
}
