// Package golden compares test output with files under testdata and rewrites them when the test
// runs with -update (go test ./xds/... -update).
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files with the current output")

// Check compares got with the golden file at path (or rewrites it with -update).
func Check(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil { //nolint:gosec // golden files are meant to be readable
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the output (-want +got); if the change is intended, run with -update:\n%s",
			path, cmp.Diff(string(want), string(got)))
	}
}

// Inputs returns the testdata/*.in.yaml files of the calling package's directory.
func Inputs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.in.yaml files (%v)", err)
	}
	return files
}

// OutputPath maps testdata/x.in.yaml to testdata/x.out.yaml.
func OutputPath(in string) string {
	return in[:len(in)-len(".in.yaml")] + ".out.yaml"
}
