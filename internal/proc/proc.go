// Package proc runs the binaries that tests and the sandbox start (kube-controller-manager, kwok,
// cert-manager's controllers): each in a process group of its own that dies with this process,
// with the end of its output kept for failure messages.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say what to run.
type Options struct {
	// Name names the process in messages.
	Name string
	Bin  string
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Preamble starts the kept log (what an earlier attempt said, for instance).
	Preamble string
	// LogLimit is how many bytes of output are kept; 256 KiB when zero.
	LogLimit int
}

// Process is a running binary.
type Process struct {
	name   string
	cmd    *exec.Cmd
	logs   *TailBuffer
	exited chan struct{}

	mu       sync.Mutex
	exitErr  error
	stopping bool
}

// Start runs the binary and returns once it has started.
func Start(o Options) (*Process, error) {
	if o.LogLimit == 0 {
		o.LogLimit = 256 << 10
	}
	p := &Process{name: o.Name, logs: NewTailBuffer(o.LogLimit), exited: make(chan struct{})}
	_, _ = p.logs.Write([]byte(o.Preamble))
	p.cmd = exec.Command(o.Bin, o.Args...)
	p.cmd.Env = append(os.Environ(), o.Env...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.SysProcAttr = SysProcAttr()
	// Do not let Wait hang on the log pipes once the process is gone.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s (%s): %w", o.Name, o.Bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Name is the process's name in messages.
func (p *Process) Name() string { return p.name }

// Logs is the end of the process's output.
func (p *Process) Logs() string { return p.logs.String() }

// CommandLine is the process's command, for messages.
func (p *Process) CommandLine() string {
	return filepath.Base(p.cmd.Path) + " " + strings.Join(p.cmd.Args[1:], " ")
}

// ExitedEarly returns why the process ended when it ended before Stop was called, nil otherwise.
func (p *Process) ExitedEarly() error {
	select {
	case <-p.exited:
	default:
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil
	}
	err := p.exitErr
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited (%w)", p.name, err)
}

// Stop ends the process and its group: SIGTERM, then SIGKILL after grace. It is safe to call more
// than once.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// TailBuffer keeps the last bytes written to it.
type TailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTailBuffer keeps the last max bytes.
func NewTailBuffer(max int) *TailBuffer { return &TailBuffer{max: max} }

func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
