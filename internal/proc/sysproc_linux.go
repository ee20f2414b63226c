package proc

import "syscall"

// SysProcAttr puts a process in a group of its own, so that Stop can signal all of it, and has
// Linux kill it when this process dies without stopping it (a test timeout's panic, kill -9).
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }
