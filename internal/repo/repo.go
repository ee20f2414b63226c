// Package repo finds the repository's own files and the tools its hack/ scripts install, for tests
// that run real parts (the Kubernetes control plane, Prometheus).
package repo

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Root is the repository's top directory, found from this source file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Tool returns the value of envVar when it is set, otherwise the path hack/<script> prints after
// building (once, cached outside the repo) or finding what it installs. The script's progress goes
// to stderr as it runs: a first run on a machine can build for minutes.
func Tool(envVar, script string) (string, error) {
	if v := os.Getenv(envVar); v != "" {
		return v, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(Root(), "hack", script))
	cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/%s: %w\n%s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}
