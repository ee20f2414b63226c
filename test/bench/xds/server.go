package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/xds/envoy"
	"github.com/sluice-mesh/sluice/xds/server"
)

// scenarioResult is what a server process reports to the coordinator.
type scenarioResult struct {
	Watch    int    `json:"watch"`
	Mode     string `json:"mode"`
	Services int    `json:"services"`
	Proxies  int    `json:"proxies"`
	Conns    int    `json:"conns"`

	TranslateSeconds float64      `json:"translateSeconds"`
	Initial          initialStats `json:"initial"`
	// Alone is the server process with the mesh published and no proxy; WithProxies the same
	// with every proxy connected and holding its initial configuration.
	Alone       memory       `json:"alone"`
	WithProxies memory       `json:"withProxies"`
	Pushes      []pushResult `json:"pushes"`
	// Peak resident sets of the two processes, for sizing the machine.
	ServerMaxRSS uint64 `json:"serverMaxRSS"`
	ClientMaxRSS uint64 `json:"clientMaxRSS"`
}

type pushResult struct {
	pushStats
	V1Weight         uint32  `json:"v1Weight"`
	TranslateSeconds float64 `json:"translateSeconds"` // envoy.Translate and Validate, before t0
	CPUSeconds       float64 `json:"cpuSeconds"`       // server process, from just before Publish to the last ACK
	PublishSeconds   float64 `json:"publishSeconds"`   // how long the Publish call took
	// OtherCPU is the CPU time the rest of the machine (neither the server nor the client
	// process) took over the same span; -1 when /proc/stat cannot be read.
	OtherCPU float64 `json:"otherCPU"`
	// Convergence is what sluice_xds_convergence_seconds{type="rds"} observed during the push.
	Convergence histogram `json:"convergence"`
}

// serverSettle lets the last ACKs of the initial fetch be processed before the heap is measured.
const serverSettle = time.Second

// runServer is the server process of one scenario: the embedded xDS server with the benchmark
// mesh, and a client process that it drives through the pushes. It writes a scenarioResult to
// stdout.
func runServer(c config) error {
	res, err := serveScenario(c)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func serveScenario(c config) (*scenarioResult, error) {
	res := &scenarioResult{Watch: c.watch, Mode: c.mode, Services: c.services, Proxies: c.proxies, Conns: c.conns}

	start := time.Now()
	tr := envoy.NewTranslator(envoy.Options{})
	initial, err := buildSnapshot(tr, c.services, initialWeight)
	if err != nil {
		return nil, err
	}
	res.TranslateSeconds = time.Since(start).Seconds()

	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Options{
		Registerer: reg,
		// Info and errors only (warm-wait timeouts, NACKs): the caches' per-watch lines are V(1).
		Logger: funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, "xds:", prefix, args) }, funcr.Options{}),
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Publish(initial, time.Time{}); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	defer func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				logf("%s: Serve: %v", c.name(), err)
			}
		case <-time.After(server.DefaultShutdownTimeout + 5*time.Second):
			logf("%s: Serve did not return after its context ended", c.name())
		}
	}()

	res.Alone = measureMemory()

	cl, err := startClients(c, lis.Addr().String())
	if err != nil {
		return nil, err
	}
	defer cl.stop()

	ready, err := cl.peer.expect(msgReady, c.initialTimeout+time.Minute)
	if err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	res.Initial = *ready.Initial
	logf("%s: %d proxies hold their initial configuration after %.1fs", c.name(), c.proxies, ready.Initial.Seconds)

	time.Sleep(serverSettle)
	res.WithProxies = measureMemory()
	if err := writeHeapProfile(c); err != nil {
		return nil, err
	}

	for i := 1; i <= c.pushes; i++ {
		pr, err := push(c, tr, srv, reg, cl.peer, i)
		if err != nil {
			return nil, fmt.Errorf("push %d: %w", i, err)
		}
		res.Pushes = append(res.Pushes, *pr)
		logf("%s: push %d: %d/%d ACKed, first %.1fms p50 %.1fms p99 %.1fms, Publish %.1fms, server CPU %.3fs",
			c.name(), i, pr.Acked, c.proxies, pr.Min*1e3, pr.P50*1e3, pr.P99*1e3, pr.PublishSeconds*1e3, pr.CPUSeconds)
	}
	cl.stop()
	res.ClientMaxRSS, res.ServerMaxRSS = cl.maxRSS(), selfMaxRSS()
	return res, nil
}

// push publishes the i-th weight change and measures it.
func push(c config, tr *envoy.Translator, srv *server.Server, reg *prometheus.Registry, p *peer, i int) (*pushResult, error) {
	w := pushWeight(i)
	// Translation is the reconciler's work before Publish: it is timed apart, outside the push.
	// The snapshot is built here rather than up front so that the heap holds one or two snapshots,
	// as the manager's does, and the collector does not scan spares during the push.
	start := time.Now()
	snap, err := buildSnapshot(tr, c.services, w)
	if err != nil {
		return nil, err
	}
	translated := time.Since(start)
	if err := p.send(message{Kind: msgArm, Push: i, V1Weight: w}); err != nil {
		return nil, err
	}
	if _, err := p.expect(msgArmed, time.Minute); err != nil {
		return nil, err
	}
	// Collect the garbage of earlier phases now, so that the push pays only for its own.
	runtime.GC()
	labels := map[string]string{"type": "rds"}
	conv0 := readHistogram(reg, "sluice_xds_convergence_seconds", labels)
	stopProfile, err := profilePush(c, i)
	if err != nil {
		return nil, err
	}
	machine0, machineErr := machineCPUSeconds()
	cpu0 := cpuSeconds()
	t0 := time.Now()
	if err := srv.Publish(snap, t0); err != nil {
		return nil, errors.Join(err, stopProfile())
	}
	published := time.Since(t0)
	if err := p.send(message{Kind: msgT0, T0: t0.UnixNano()}); err != nil {
		return nil, errors.Join(err, stopProfile())
	}
	m, err := p.expect(msgResult, c.pushTimeout+time.Minute)
	cpu := cpuSeconds() - cpu0
	machine1, err1 := machineCPUSeconds()
	if err := errors.Join(err, stopProfile()); err != nil {
		return nil, err
	}
	conv1 := readHistogram(reg, "sluice_xds_convergence_seconds", labels)
	other := -1.0 // unknown
	if machineErr == nil && err1 == nil {
		other = max(machine1-machine0-cpu-m.Result.ClientCPU, 0)
	}
	return &pushResult{
		OtherCPU:         other,
		pushStats:        *m.Result,
		V1Weight:         w,
		TranslateSeconds: translated.Seconds(),
		CPUSeconds:       cpu,
		PublishSeconds:   published.Seconds(),
		Convergence:      histogram{Count: conv1.Count - conv0.Count, Sum: conv1.Sum - conv0.Sum},
	}, nil
}

// clientProcess is the child process that runs the proxies.
type clientProcess struct {
	cmd      *exec.Cmd
	peer     *peer
	exited   chan error
	stopOnce sync.Once
}

func startClients(c config, addr string) (*clientProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append(c.args("clients"), "-addr="+addr)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the client process: %w", err)
	}
	cp := &clientProcess{cmd: cmd, peer: newPeer(out, in), exited: make(chan error, 1)}
	go func() { cp.exited <- cmd.Wait() }()
	return cp, nil
}

// stop asks the client process to quit, and kills it if it has not within a bound. It may be
// called more than once.
func (cp *clientProcess) stop() {
	cp.stopOnce.Do(func() {
		_ = cp.peer.send(message{Kind: msgQuit})
		var err error
		select {
		case err = <-cp.exited:
		case <-time.After(30 * time.Second):
			_ = cp.cmd.Process.Kill()
			err = <-cp.exited
		}
		if err != nil {
			logf("client process: %v", err)
		}
	})
}

// maxRSS is the client process's peak resident set, once it has stopped.
func (cp *clientProcess) maxRSS() uint64 {
	if ru, ok := cp.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return uint64(ru.Maxrss) << 10 // KiB on Linux
	}
	return 0
}

// writeHeapProfile writes the server's heap profile, if asked to.
func writeHeapProfile(c config) error {
	if c.profileDir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(c.profileDir, "heap-"+c.name()+".pprof"))
	if err != nil {
		return err
	}
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}

// profilePush profiles the CPU of push i until the returned function is called, if asked to.
// Only the pushes are profiled, not the translation and collections between them; merge the
// files with `go tool pprof cpu-<scenario>-push*.pprof`.
func profilePush(c config, i int) (stop func() error, err error) {
	if c.profileDir == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(filepath.Join(c.profileDir, fmt.Sprintf("cpu-%s-push%d.pprof", c.name(), i)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-xds: "+format+"\n", args...)
}
