package testcertmanager

import "syscall"

// sysProcAttr puts the process in a group of its own, so that Stop can signal all of it, and has
// Linux kill it when the test process dies without stopping it (e.g. on a test timeout's panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error { return syscall.Kill(-pid, sig) }
