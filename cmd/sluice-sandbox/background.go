package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// up starts `sluice-sandbox run` in the background, detached from the terminal, and returns once
// the sandbox is ready (or failed to start, with the end of its log).
func up(stateDir, demoApp string) error {
	if pid, ok := runningPID(stateDir); ok {
		return fmt.Errorf("a sandbox already runs (pid %d); stop it with make sandbox-down", pid)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(stateDir, "ready"))
	logPath := filepath.Join(stateDir, "sandbox.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-state="+stateDir, "-demoapp="+demoApp, "run")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command and its terminal
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stateDir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(5 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(stateDir, "ready")); err == nil {
			fmt.Printf("The sandbox is up (pid %d, log %s): greeter v1 runs in namespace demo under a Rollout.\n"+
				"  kubectl --kubeconfig %s get sluice,deploy,pods -A\n"+
				"  kubectl --kubeconfig %[3]s -n demo set env deployment/greeter VERSION=v2\n"+
				"  bin/sluice-sandbox exec -- bin/demoapp call -n 3 xds:///%s   # your own client, inside\n"+
				"Stop it with make sandbox-down.\n",
				cmd.Process.Pid, logPath, filepath.Join(stateDir, "kubeconfig"), demoTarget)
			return nil
		}
		select {
		case err := <-exited:
			_ = os.Remove(filepath.Join(stateDir, "pid"))
			return fmt.Errorf("the sandbox stopped while starting (%w):\n%s", err, tail(logPath, 30))
		case <-deadline:
			return fmt.Errorf("the sandbox is not ready after 5 minutes; see %s", logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// down stops the background sandbox and waits until its process is gone.
func down(stateDir string) error {
	pid, ok := runningPID(stateDir)
	if !ok {
		fmt.Println("No sandbox runs.")
		_ = os.Remove(filepath.Join(stateDir, "pid"))
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // its session's process group
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(stateDir, "pid"))
	fmt.Printf("The sandbox (pid %d) stopped.\n", pid)
	return nil
}

func runningPID(stateDir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(stateDir, "pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, err == nil && alive(pid)
}

// alive says whether pid runs (and is not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
