package testprom

import "syscall"

// sysProcAttr has Linux kill Prometheus when the test process dies without stopping it (e.g. on a
// test timeout's panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
