package testcertmanager

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a running binary whose output is kept for failure messages.
type process struct {
	name   string
	cmd    *exec.Cmd
	logs   *tailBuffer
	exited chan struct{}

	mu       sync.Mutex
	exitErr  error
	stopping bool
}

func startProcess(name, bin string, args []string) (*process, error) {
	p := &process{name: name, logs: &tailBuffer{max: 256 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.SysProcAttr = sysProcAttr()
	// Do not let Wait hang on the log pipes once the process is gone.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s (%s): %w", name, bin, err)
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

// commandLine is the process's command, for messages.
func (p *process) commandLine() string {
	return filepath.Base(p.cmd.Path) + " " + strings.Join(p.cmd.Args[1:], " ")
}

// exitedEarly returns why the process ended when it ended before stop was called, nil otherwise.
func (p *process) exitedEarly() error {
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

// stop ends the process and its group: SIGTERM, then SIGKILL after grace. It is safe to call more
// than once.
func (p *process) stop(grace time.Duration) {
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

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
