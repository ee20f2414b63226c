package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/xds/envoy"
)

func TestWriteFilesWritesTheSDSFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proxy")
	tls := envoy.XDSClientTLS{CertFile: "/id/tls.crt", KeyFile: "/id/tls.key", CAFile: "/id/ca.crt", ServerName: "xds.example", SDSDir: dir}
	if err := writeFiles(tls); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{envoy.XDSClientCertSecret, envoy.XDSClientCASecret} {
		data, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "name: "+name) || !strings.Contains(string(data), "/id/") {
			t.Errorf("%s.yaml does not hold its secret naming the files:\n%s", name, data)
		}
	}
}
