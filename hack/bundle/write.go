package main

import (
	"os"
	"path/filepath"
	"slices"
)

// Write replaces the bundle under root with files: bundle/manifests and bundle/metadata are
// emptied first, so a manifest that is no longer generated does not linger.
func Write(root string, files Files) error {
	for _, dir := range []string{"manifests", "metadata"} {
		if err := os.RemoveAll(filepath.Join(root, BundleDir, dir)); err != nil {
			return err
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return err
		}
	}
	return nil
}
