package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sluice-mesh/sluice/internal/testpki"
)

// What reading the TLS files at every handshake costs (BenchmarkTLSFilesPerHandshake), next to
// the handshake itself (BenchmarkMTLSHandshake): docs/xds-server.md.
func BenchmarkTLSFilesPerHandshake(b *testing.B) {
	p := newBenchPKI(b)
	f, err := newTLSFiles(p.dir, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.current(nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMTLSHandshake(b *testing.B) {
	p := newBenchPKI(b)
	f, err := newTLSFiles(p.dir, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	client := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{p.ca.Issue(b, []string{webID}, nil).TLS(b)}}
	server := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: f.current}
	b.ReportAllocs()
	for b.Loop() {
		c, s := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- tls.Server(s, server).Handshake() }()
		if err := tls.Client(c, client).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
		_ = s.Close()
	}
}

func newBenchPKI(b *testing.B) *pki {
	p := &pki{ca: testpki.NewCA(b, "mesh"), dir: b.TempDir()}
	testpki.WriteTLSDir(b, p.dir, p.ca.Issue(b, nil, nil, net.ParseIP("127.0.0.1")), p.ca.PEM)
	return p
}
