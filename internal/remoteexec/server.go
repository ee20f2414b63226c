// Package remoteexec runs a command on behalf of another process, here: a Server listening on a
// Unix socket starts each command it is asked for as its own child, with the asking process's
// standard input, output and error (passed over the socket), arguments, environment and working
// directory, forwards it the signals the asker receives, and answers with its exit code. Run is the
// asking side.
//
// The sandbox uses it to run a user's program inside its network namespace: a Unix socket is a
// file, reachable from the host, while entering the namespace from outside would need setns of
// a user namespace, which a multi-threaded Go program cannot do.
package remoteexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// request is what Run sends once, after the file descriptors of its standard streams.
type request struct {
	Path string   `json:"path"` // absolute, resolved by the asker with its PATH
	Args []string `json:"args"` // Args[0] included
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

// message is what Run sends while the command runs: a signal to forward.
type message struct {
	Signal int `json:"signal"`
}

// reply is the Server's answer once the command has ended (or could not start).
type reply struct {
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// Server runs the commands asked for on a Unix socket.
type Server struct {
	l       *net.UnixListener
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[*exec.Cmd]bool
	closed  bool
}

// Listen makes a Unix socket at path that only this user may use, and serves it until Close.
func Listen(path string) (*Server, error) {
	_ = os.Remove(path) // a socket left by a process that did not stop cleanly
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, err
	}
	s := &Server{l: l, running: map[*exec.Cmd]bool{}}
	s.wg.Go(s.serve)
	return s, nil
}

func (s *Server) serve() {
	for {
		conn, err := s.l.AcceptUnix()
		if err != nil {
			return // closed
		}
		s.wg.Go(func() { s.handle(conn) })
	}
}

// Close stops accepting, ends the commands still running (SIGTERM to each one's process group,
// SIGKILL after grace), waits for them and removes the socket.
func (s *Server) Close(grace time.Duration) {
	s.mu.Lock()
	s.closed = true
	var cmds []*exec.Cmd
	for cmd := range s.running {
		cmds = append(cmds, cmd)
	}
	s.mu.Unlock()
	_ = s.l.Close() // removes the socket file too
	for _, cmd := range cmds {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		for _, cmd := range cmds {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		<-done
	}
}

func (s *Server) handle(conn *net.UnixConn) {
	defer func() { _ = conn.Close() }()
	enc := json.NewEncoder(conn)
	code, err := s.run(conn)
	r := reply{ExitCode: code}
	if err != nil {
		r.Error = err.Error()
	}
	_ = enc.Encode(r)
}

// run starts the command asked for on conn, forwards signals to it until it ends, and returns its
// exit code (128+N when signal N killed it).
func (s *Server) run(conn *net.UnixConn) (int, error) {
	stdio, err := receiveFiles(conn, 3)
	if err != nil {
		return 1, err
	}
	defer func() {
		for _, f := range stdio {
			_ = f.Close() // the child has its own copies
		}
	}()
	dec := json.NewDecoder(conn)
	var req request
	if err := dec.Decode(&req); err != nil {
		return 1, fmt.Errorf("reading the request: %w", err)
	}
	if len(req.Args) == 0 {
		return 1, errors.New("no command")
	}
	cmd := &exec.Cmd{Path: req.Path, Args: req.Args, Env: req.Env, Dir: req.Dir, Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2]}
	// A group of its own, to signal it and what it starts; it dies with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 1, errors.New("the server is stopping")
	}
	err = cmd.Start()
	if err == nil {
		s.running[cmd] = true
	}
	s.mu.Unlock()
	if err != nil {
		return 127, err
	}
	exited := make(chan struct{})
	go func() {
		// Signals from the asker; when it goes away (killed, or its connection lost), the
		// command goes too, as a foreground program dies with its terminal.
		for {
			var m message
			err := dec.Decode(&m)
			select {
			case <-exited:
				return
			default:
			}
			if err != nil {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				return
			}
			if m.Signal > 0 {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.Signal(m.Signal))
			}
		}
	}()
	err = cmd.Wait()
	close(exited)
	s.mu.Lock()
	delete(s.running, cmd)
	s.mu.Unlock()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return 1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}

// receiveFiles reads the one byte that carries n file descriptors.
func receiveFiles(conn *net.UnixConn, n int) ([]*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(n*4))
	// The descriptors arrive inheritable: no command may start before they are close-on-exec,
	// or a command asked for at the same time would hold this one's streams.
	syscall.ForkLock.RLock()
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	var files []*os.File
	if err == nil {
		var msgs []syscall.SocketControlMessage
		msgs, err = syscall.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, err := syscall.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				syscall.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("fd %d", len(files))))
			}
		}
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		for _, f := range files {
			_ = f.Close()
		}
		return nil, fmt.Errorf("reading the standard streams: %w", err)
	}
	if len(files) != n {
		for _, f := range files {
			_ = f.Close()
		}
		return nil, fmt.Errorf("got %d file descriptors, want %d", len(files), n)
	}
	return files, nil
}
