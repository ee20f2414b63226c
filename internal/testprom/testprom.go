// Package testprom runs a real Prometheus server (built by hack/prometheus.sh) for tests: it
// scrapes the metrics endpoints a test serves on 127.0.0.1, keeps its storage in a temporary
// directory, and answers the HTTP API on a free loopback port.
package testprom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/proc"
	"github.com/sluice-mesh/sluice/internal/repo"
)

// Options configure a Server.
type Options struct {
	// Targets are host:port addresses on 127.0.0.1 serving /metrics over plain HTTP.
	Targets []string
	// TargetGroups are more targets, each group with its own labels (as a Kubernetes scrape
	// config's relabeling gives each pod its namespace, pod and pod_template_hash).
	TargetGroups []TargetGroup
	// ScrapeInterval is how often targets are scraped and rules evaluated; 1s when zero. It must be
	// a whole number of milliseconds.
	ScrapeInterval time.Duration
	// ExtraLabels are added to every series scraped from the targets; a group's own Labels win.
	ExtraLabels map[string]string
	// JobName is the scrape job's name (the job label); "sluice-test" when empty.
	JobName string
	// StartTimeout bounds the wait for /-/ready; 60s when zero.
	StartTimeout time.Duration
	// Binary is the prometheus binary to run; Binary() when empty.
	Binary string
}

// TargetGroup is targets that share labels: one static_configs entry.
type TargetGroup struct {
	// Targets are host:port addresses on a loopback address serving /metrics over plain HTTP.
	Targets []string
	// Labels are added to every series scraped from these targets. Names must be valid
	// Prometheus label names; a target label overrides one of the same name in the scraped series
	// by renaming that to exported_<name>.
	Labels map[string]string
}

// Server is a running Prometheus.
type Server struct {
	opts   Options
	dir    string
	bin    string // the Prometheus binary
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *proc.TailBuffer

	mu       sync.Mutex
	exitErr  error
	groups   []TargetGroup
	stopOnce sync.Once

	noReloadFlag bool
	stopErr      error
}

var binary = sync.OnceValues(func() (string, error) { return repo.Tool("PROMETHEUS_BINARY", "prometheus.sh") })

// Binary returns the prometheus binary to run: PROMETHEUS_BINARY when set, otherwise what
// hack/prometheus.sh builds or finds in its cache.
func Binary() (string, error) { return binary() }

// StartT starts a Server for a test and stops it when the test ends. It skips the test in -short
// mode and fails it when Prometheus cannot start.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped in -short mode")
	}
	ctx := t.Context()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting Prometheus: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Prometheus: %v", err)
		}
	})
	return s
}

// Start runs Prometheus on a free 127.0.0.1 port with a configuration that scrapes opts.Targets,
// and returns once it is ready. ctx bounds the start only; call Stop when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.ScrapeInterval < time.Millisecond || opts.ScrapeInterval%time.Millisecond != 0 {
		return nil, fmt.Errorf("scrape interval %v: must be a whole number of milliseconds", opts.ScrapeInterval)
	}
	if opts.JobName == "" {
		opts.JobName = "sluice-test"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "sluice-testprom-")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, dir: dir, groups: initialGroups(opts)}
	if err := s.writeConfig(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	// The free port is found by binding and releasing it, so another process may take it before
	// Prometheus binds it: try again with a new one when that happens.
	s.bin = bin
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		err = s.start(ctx, addr)
		if err == nil {
			return s, nil
		}
		_ = s.kill()
		logs := s.logs.String()
		if !s.noReloadFlag && strings.Contains(logs, "unknown long flag '--scrape.discovery-reload-interval'") {
			s.noReloadFlag = true
			continue
		}
		if attempt >= 3 || ctx.Err() != nil || !strings.Contains(logs, "address already in use") {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (s *Server) start(ctx context.Context, addr string) error {
	bin := s.bin
	s.url = "http://" + addr
	s.logs = proc.NewTailBuffer(64 << 10)
	s.exited = make(chan struct{})
	args := []string{
		"--config.file=" + filepath.Join(s.dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(s.dir, "data"),
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
		"--log.level=warn",
	}
	if !s.noReloadFlag {
		// Apply new targets within 100ms rather than the default 5s (a hidden flag, so an older
		// Prometheus may not know it; start then retries without it).
		args = append(args, "--scrape.discovery-reload-interval=100ms")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	s.cmd.SysProcAttr = proc.SysProcAttr()
	// Do not let Wait hang on the log pipes once the process is gone.
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	go func() {
		err := s.cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(s.exited)
	}()
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", http.NoBody)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			s.mu.Lock()
			exitErr := s.exitErr
			s.mu.Unlock()
			if exitErr == nil {
				exitErr = errors.New("exit status 0")
			}
			return fmt.Errorf("prometheus exited before it was ready (%w):\n%s", exitErr, s.logs.String())
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready at %s: %w\n%s", s.url, ctx.Err(), s.logs.String())
		case <-tick.C:
		}
	}
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234: the address for the HTTP API.
func (s *Server) URL() string { return s.url }

// Logs returns the last 64 KiB of Prometheus's log (warnings and errors only).
func (s *Server) Logs() string { return s.logs.String() }

// SetTargets replaces every scraped target (those of Options.TargetGroups too) with targets,
// which get only Options.ExtraLabels: it rewrites the configuration and has Prometheus reload it,
// returning once the reload has been applied.
func (s *Server) SetTargets(ctx context.Context, targets ...string) error {
	return s.SetTargetGroups(ctx, TargetGroup{Targets: targets})
}

// SetTargetGroups replaces every scraped target with those of groups, each group with its labels
// (over Options.ExtraLabels), the way SetTargets does.
func (s *Server) SetTargetGroups(ctx context.Context, groups ...TargetGroup) error {
	s.mu.Lock()
	old := s.groups
	s.groups = cloneGroups(groups)
	err := s.writeConfigLocked()
	if err != nil {
		s.groups = old
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/-/reload", http.NoBody)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reloading Prometheus: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("reloading Prometheus: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitForSeries polls the instant query until it returns at least one sample (or a scalar) and
// returns that answer. It gives up when ctx ends, or after 30s when ctx has no deadline, with the
// last error or answer in the message.
func (s *Server) WaitForSeries(ctx context.Context, query string) (model.Value, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	client, err := api.NewClient(api.Config{Address: s.url})
	if err != nil {
		return nil, err
	}
	promAPI := promv1.NewAPI(client)
	every := max(s.opts.ScrapeInterval/5, 20*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := "no answer yet"
	for {
		value, _, err := promAPI.Query(ctx, query, time.Time{})
		switch {
		case err != nil && ctx.Err() != nil:
			// Cut short by ctx: keep the previous answer for the message.
		case err != nil:
			last = "error: " + err.Error()
		case hasSamples(value):
			return value, nil
		default:
			last = "empty result"
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %q: %w (last: %s)", query, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func hasSamples(v model.Value) bool {
	switch v := v.(type) {
	case model.Vector:
		return len(v) > 0
	case model.Matrix:
		return len(v) > 0
	case *model.Scalar:
		return true
	}
	return false
}

// Interrupt stops the Prometheus process, as an outage would, but keeps its address, storage and
// configuration for Restart.
func (s *Server) Interrupt() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		return s.kill()
	}
}

// Restart starts Prometheus again after Interrupt, on the same address with the same storage and
// targets, and returns once it is ready.
func (s *Server) Restart(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	return s.start(ctx, strings.TrimPrefix(s.url, "http://"))
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10s) and removes its storage. It is safe to
// call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
				s.stopErr = fmt.Errorf("prometheus did not stop within 10s of SIGTERM; killed\n%s", s.logs.String())
			}
		}
		if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}

// kill ends a process that failed to start.
func (s *Server) kill() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	err := s.cmd.Process.Kill()
	<-s.exited
	return err
}

func (s *Server) writeConfig() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeConfigLocked()
}

// writeConfigLocked writes prometheus.yml. It is JSON, which is YAML too.
func (s *Server) writeConfigLocked() error {
	staticConfigs, err := staticConfigs(s.groups, s.opts.ExtraLabels)
	if err != nil {
		return err
	}
	interval := fmt.Sprintf("%dms", s.opts.ScrapeInterval.Milliseconds())
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     interval,
			"scrape_timeout":      interval,
			"evaluation_interval": interval,
		},
		"scrape_configs": []any{map[string]any{
			"job_name":       s.opts.JobName,
			"metrics_path":   "/metrics",
			"static_configs": staticConfigs,
		}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, "prometheus.yml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}
