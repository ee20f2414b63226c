package install_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/repo"
)

// TestDockerfileBuildsTheManager checks what can be checked of the Dockerfile without a container
// engine: it copies every directory the manager's packages live in, builds with the Go release
// go.mod asks for, and ends distroless as a numeric non-root user.
func TestDockerfileBuildsTheManager(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repo.Root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(data)
	copied := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^COPY ([a-z]+)/ `).FindAllStringSubmatch(dockerfile, -1) {
		copied[m[1]] = true
	}

	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}", "./cmd/manager")
	cmd.Dir = repo.Root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/sluice-mesh/sluice/"
	for _, pkg := range strings.Fields(string(out)) {
		dir, _, _ := strings.Cut(strings.TrimPrefix(pkg, module), "/")
		if !copied[dir] {
			t.Errorf("the manager imports %s, but the Dockerfile does not copy %s/", pkg, dir)
		}
	}

	goMod, err := os.ReadFile(filepath.Join(repo.Root(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(goMod))
	if goVersion == nil || !strings.Contains(dockerfile, "ARG GO_VERSION="+goVersion[1]+"\n") {
		t.Errorf("the Dockerfile's GO_VERSION is not go.mod's Go release %v", goVersion)
	}
	final := dockerfile[strings.LastIndex(dockerfile, "\nFROM "):]
	if !strings.Contains(final, "FROM gcr.io/distroless/") || !regexp.MustCompile(`(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`).MatchString(final) {
		t.Errorf("the final stage must be distroless and run as a numeric non-root user:\n%s", final)
	}
}
