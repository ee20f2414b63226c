package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// The files of a TLS directory (a mounted kubernetes.io/tls Secret, as cert-manager writes it).
const (
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
	TLSCAFile   = "ca.crt"
)

// tlsFiles is the server certificate and the client CAs of a directory, read again at every TLS
// handshake: when cert-manager renews the certificate and the kubelet swaps the mounted files,
// the next connection gets the new certificate, with no restart and no polling delay. Reading three
// small files costs little next to the handshake itself. A half-updated directory (a key that does
// not match the certificate) keeps the previous configuration until the files agree again.
type tlsFiles struct {
	dir string
	log logr.Logger

	mu     sync.Mutex
	loaded [3][]byte // the files' bytes behind config
	config *tls.Config
	// failed is the content that last failed to load, so a bad file is logged once.
	failed [3][]byte
}

// newTLSFiles reads dir once; it fails if the files are missing or do not make a configuration.
func newTLSFiles(dir string, log logr.Logger) (*tlsFiles, error) {
	f := &tlsFiles{dir: dir, log: log}
	raw, err := f.read()
	if err != nil {
		return nil, err
	}
	if f.config, err = serverTLSConfig(raw); err != nil {
		return nil, fmt.Errorf("xDS TLS directory %s: %w", dir, err)
	}
	f.loaded = raw
	return f, nil
}

func (f *tlsFiles) read() ([3][]byte, error) {
	var raw [3][]byte
	for i, name := range []string{TLSCertFile, TLSKeyFile, TLSCAFile} {
		b, err := os.ReadFile(filepath.Join(f.dir, name))
		if err != nil {
			return raw, fmt.Errorf("reading the xDS server's TLS files (want %s, %s and %s): %w", TLSCertFile, TLSKeyFile, TLSCAFile, err)
		}
		raw[i] = b
	}
	return raw, nil
}

// current is the configuration for a new connection (tls.Config.GetConfigForClient).
func (f *tlsFiles) current(*tls.ClientHelloInfo) (*tls.Config, error) {
	raw, err := f.read()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.log.Error(err, "Serving xDS with the TLS files read before")
		return f.config, nil
	}
	if same(raw, f.loaded) || same(raw, f.failed) {
		return f.config, nil
	}
	c, err := serverTLSConfig(raw)
	if err != nil {
		f.failed = raw
		f.log.Error(err, "The xDS TLS files changed but do not load; serving the previous ones", "dir", f.dir)
		return f.config, nil
	}
	f.loaded, f.config = raw, c
	f.log.Info("Serving the xDS TLS files again after a change", "dir", f.dir)
	return c, nil
}

func same(a, b [3][]byte) bool {
	return bytes.Equal(a[0], b[0]) && bytes.Equal(a[1], b[1]) && bytes.Equal(a[2], b[2])
}

// serverTLSConfig serves the certificate and requires a client certificate that chains to the CAs.
func serverTLSConfig(raw [3][]byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", TLSCertFile, TLSKeyFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw[2]) {
		return nil, fmt.Errorf("%s holds no PEM certificate", TLSCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"}, // gRPC's ALPN; this config replaces the one gRPC set it on
	}, nil
}

// ServeMTLS is Serve over mutual TLS, from the files tls.crt, tls.key and ca.crt of dir (see
// tlsFiles): every client must present a certificate that chains to ca.crt, and its streams are
// authenticated by it (auth.go). It fails at once if the files do not load.
func (s *Server) ServeMTLS(ctx context.Context, lis net.Listener, dir string) error {
	files, err := newTLSFiles(dir, s.log.WithName("tls"))
	if err != nil {
		return err
	}
	creds := &countingCreds{
		TransportCredentials: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: files.current}),
		handshakes:           s.metrics.tlsHandshakes,
	}
	return s.serve(ctx, lis, grpc.Creds(creds))
}

// countingCreds counts the server's TLS handshakes by result.
type countingCreds struct {
	credentials.TransportCredentials
	handshakes *prometheus.CounterVec
}

func (c *countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	result := "ok"
	if err != nil {
		result = "failed"
	}
	c.handshakes.WithLabelValues(result).Inc()
	return out, info, err
}

func (c *countingCreds) Clone() credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c.TransportCredentials.Clone(), handshakes: c.handshakes}
}
