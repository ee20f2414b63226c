package podnet

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// listenFiles opens a TCP listener on each host address and returns their files, for the child.
func listenFiles(addrs []string) ([]*os.File, error) {
	var files []*os.File
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("podnet: listening on the host at %s: %w", addr, err)
		}
		f, err := l.(*net.TCPListener).File()
		_ = l.Close() // f is a duplicate that keeps the socket open
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("podnet: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

func hostListenerFDs() []int {
	v := os.Getenv(envListeners)
	if v == "" {
		return nil
	}
	var fds []int
	for _, s := range strings.Split(v, ",") {
		if fd, err := strconv.Atoi(s); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

// HostListeners returns, inside, the listeners EnterListening opened on the host, in the order of
// its addresses; nil outside or when there were none. Call it once: each call wraps the same
// descriptors again.
func HostListeners() ([]net.Listener, error) {
	var out []net.Listener
	for _, fd := range hostListenerFDs() {
		f := os.NewFile(uintptr(fd), "podnet-host-listener")
		l, err := net.FileListener(f) // a duplicate; f can go
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("podnet: host listener on fd %d: %w", fd, err)
		}
		out = append(out, l)
	}
	return out, nil
}
