//go:build !linux

package proc

import (
	"os"
	"syscall"
)

// SysProcAttr is nil where process groups and Pdeathsig do not exist.
func SysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
