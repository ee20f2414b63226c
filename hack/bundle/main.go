// Command bundle writes and checks Sluice's OLM bundle.
//
//	go run . generate -root ../.. -version 0.1.0 [-image ghcr.io/sluice-mesh/sluice:v0.1.0]
//	go run . validate -dir ../../bundle
//
// generate renders config/manifests with kustomize (the CSV's hand-written base, config/default
// and config/samples) and writes bundle/manifests, bundle/metadata and bundle.Dockerfile; validate
// runs the operator-framework validators, the OperatorHub suite included, and fails on any error
// or warning. `make bundle` and `make bundle-validate` run them.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "generate":
		err = generate(os.Args[2:])
	case "validate":
		err = validate(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bundle generate -root DIR -version X.Y.Z [-image IMAGE] | bundle validate -dir DIR")
	os.Exit(2)
}

func generate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ExitOnError)
	root := fs.String("root", "../..", "the repository's top directory")
	version := fs.String("version", "", "the operator's version, x.y.z (required)")
	image := fs.String("image", "", "the manager's image; default ghcr.io/sluice-mesh/sluice:v<version>")
	_ = fs.Parse(args)
	opts := Options{Version: *version, Image: *image}
	objs, err := Render(*root)
	if err != nil {
		return err
	}
	files, notes, err := Build(objs, opts)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "note:", n)
	}
	if err := Write(*root, files); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d files)\n", filepath.Join(*root, BundleDir), len(files))
	return nil
}

func validate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ExitOnError)
	dir := fs.String("dir", "../../bundle", "the bundle directory (manifests/ and metadata/)")
	_ = fs.Parse(args)
	report, err := Validate(*dir)
	if err != nil {
		return err
	}
	for _, w := range report.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	for _, e := range report.Errors {
		fmt.Fprintln(os.Stderr, "error:", e)
	}
	if !report.Clean() {
		return fmt.Errorf("%s: %d errors, %d warnings", *dir, len(report.Errors), len(report.Warnings))
	}
	fmt.Fprintf(os.Stderr, "%s: valid (%d validators, no error or warning)\n", *dir, len(validators))
	return nil
}
