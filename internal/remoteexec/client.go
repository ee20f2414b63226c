package remoteexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// ErrNoServer is returned by Run when nothing listens at the socket.
var ErrNoServer = errors.New("nothing listens at the socket")

// Command is what to run.
type Command struct {
	// Args[0] is looked up in this process's PATH.
	Args []string
	Env  []string
	// Dir is the working directory; this process's when empty.
	Dir string
	// The standard streams; this process's when nil.
	Stdin, Stdout, Stderr *os.File
}

// Run has the Server at socket run cmd; it forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the
// command's process group, and returns its exit code once it has ended.
func Run(socket string, cmd Command) (int, error) {
	if len(cmd.Args) == 0 {
		return 0, errors.New("no command given")
	}
	path, err := exec.LookPath(cmd.Args[0])
	if err != nil {
		return 0, err
	}
	if path, err = filepath.Abs(path); err != nil {
		return 0, err
	}
	if cmd.Dir == "" {
		if cmd.Dir, err = os.Getwd(); err != nil {
			return 0, err
		}
	}
	stdio := []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr}
	for i, std := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if stdio[i] == nil {
			stdio[i] = std
		}
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("%w %s", ErrNoServer, socket)
		}
		return 0, err
	}
	defer func() { _ = conn.Close() }()

	// Caught from before the command starts, so none is lost.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer func() { signal.Stop(signals); close(signals) }()

	rights := syscall.UnixRights(int(stdio[0].Fd()), int(stdio[1].Fd()), int(stdio[2].Fd()))
	if _, _, err := conn.WriteMsgUnix([]byte{0}, rights, nil); err != nil {
		return 0, fmt.Errorf("passing the standard streams: %w", err)
	}
	enc := json.NewEncoder(conn)
	if err := enc.Encode(request{Path: path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir}); err != nil {
		return 0, err
	}
	go func() {
		for sig := range signals {
			_ = enc.Encode(message{Signal: int(sig.(syscall.Signal))})
		}
	}()

	var r reply
	if err := json.NewDecoder(conn).Decode(&r); err != nil {
		return 0, fmt.Errorf("waiting for the command: %w", err)
	}
	if r.Error != "" {
		return r.ExitCode, errors.New(r.Error)
	}
	return r.ExitCode, nil
}
