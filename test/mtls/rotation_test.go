package mtls_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	corev1 "k8s.io/api/core/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testcertmanager"
	"github.com/sluice-mesh/sluice/internal/testmesh"
)

// peerSerialKey is the trailer in which the server returns the serial of the caller's certificate.
const peerSerialKey = "x-peer-serial"

// peerSerial is the serial of the peer's certificate, "" without TLS.
func peerSerial(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	return tlsPeerSerial(p)
}

func tlsPeerSerial(p *peer.Peer) string {
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.PeerCertificates) == 0 {
		return ""
	}
	return serialOf(tlsInfo.State.PeerCertificates[0])
}

func serialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Rotation under STRICT mTLS: while calls flow without a pause, on one long-lived connection and
// on new connections made one after the other, cert-manager renews the server's and the client's
// certificates (as `cmctl renew` does), their Secret volumes are updated as the kubelet does, and
// gRPC's file_watcher picks the new files up. No call may fail; new connections must then present
// the new certificates both ways, while the long-lived one goes on with the TLS session it has.
func TestRotation(t *testing.T) {
	m := newMesh(t, "mtls-rotation", meshv1alpha1.MTLSStrict, "192.0.2.114")
	oldServer, oldClient := fileCert(t, m.serverFiles), fileCert(t, m.clientFiles)

	long, err := m.dial()
	must(t, err)
	defer func() { _ = long.Close() }()
	warm, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	_, err = testgrpc.NewTestServiceClient(long).UnaryCall(warm, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
	cancel()
	must(t, err)

	l := startLoad(m, long)
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			l.stop()
		}
	}
	defer stopLoad()
	time.Sleep(time.Second) // calls on the old certificates

	// Renew both identities at once.
	trigger := time.Now()
	var (
		wg                sync.WaitGroup
		renewed           [2]*corev1.Secret
		renewErr          [2]error
		renewTook         [2]time.Duration
		names             = [2]string{"test-identity-ledger", "test-identity-client"}
		renewCtx, cancelR = context.WithTimeout(t.Context(), 30*time.Second)
	)
	for i, name := range names {
		wg.Go(func() {
			renewed[i], renewErr[i] = cm.Renew(renewCtx, m.ns, name)
			renewTook[i] = time.Since(trigger)
		})
	}
	wg.Wait()
	cancelR()
	for i := range names {
		must(t, renewErr[i])
	}
	newServer, newClient := secretCert(t, renewed[0]), secretCert(t, renewed[1])
	for _, c := range []struct{ old, new *x509.Certificate }{{oldServer, newServer}, {oldClient, newClient}} {
		if c.new.SerialNumber.Cmp(c.old.SerialNumber) == 0 || uriOf(c.new) != uriOf(c.old) {
			t.Fatalf("renewed %s: serial %s (was %s); want a new serial for the same identity",
				uriOf(c.new), serialOf(c.new), serialOf(c.old))
		}
	}
	t.Logf("renewed by cert-manager: server %s in %v (serial %s -> %s), client %s in %v (serial %s -> %s)",
		uriOf(newServer), renewTook[0].Round(time.Millisecond), serialOf(oldServer), serialOf(newServer),
		uriOf(newClient), renewTook[1].Round(time.Millisecond), serialOf(oldClient), serialOf(newClient))

	// The kubelet updates the mounted Secret volumes.
	written := time.Now()
	must(t, writeSecretVolume(filepath.Dir(m.serverFiles.Cert), renewed[0]))
	must(t, writeSecretVolume(filepath.Dir(m.clientFiles.Cert), renewed[1]))

	// New connections present the new certificates, both ways, within file_watcher's refresh.
	want := serials{server: serialOf(newServer), client: serialOf(newClient)}
	converged, ok := l.waitFresh(want, written, 10*time.Second)
	if !ok {
		stopLoad()
		t.Fatalf("no new connection presented the new certificates within 10s of the files' update (%s): %v",
			m.serverFiles.Refresh, l.summary())
	}
	t.Logf("new connections use the new certificates %v after the files were updated (file_watcher refresh %v)",
		converged.Sub(written).Round(time.Millisecond), m.serverFiles.Refresh)
	time.Sleep(time.Second) // calls after the rotation
	stopLoad()

	// A client created after the rotation.
	after, err := m.dial()
	must(t, err)
	defer func() { _ = after.Close() }()
	for i := range 20 {
		got, err := call(t.Context(), testgrpc.NewTestServiceClient(after), true)
		if err != nil {
			t.Fatalf("call %d of a client created after the rotation: %v", i, err)
		}
		if got != want {
			t.Fatalf("call %d of a client created after the rotation: %v, want %v", i, got, want)
		}
	}

	// The verdict over every call of the load.
	old := serials{server: serialOf(oldServer), client: serialOf(oldClient)}
	r := l.results()
	var failed []result
	counts := map[string]map[serials]int{}
	for _, c := range r {
		if c.err != nil {
			failed = append(failed, c)
			continue
		}
		if c.got.server != old.server && c.got.server != want.server || c.got.client != old.client && c.got.client != want.client {
			t.Errorf("a %s call saw %v: neither the old (%v) nor the new (%v) certificates", c.kind, c.got, old, want)
		}
		if c.kind == fresh && c.dialled.After(converged) && c.got != want {
			t.Errorf("a connection made %v after the new certificates were in use saw %v, want %v",
				c.dialled.Sub(converged).Round(time.Millisecond), c.got, want)
		}
		if counts[c.kind] == nil {
			counts[c.kind] = map[serials]int{}
		}
		counts[c.kind][c.got]++
	}
	first, last := r[0].done, r[len(r)-1].done
	window := func(from, to time.Time) (n int) {
		for _, c := range r {
			if !c.done.Before(from) && c.done.Before(to) {
				n++
			}
		}
		return n
	}
	t.Logf("%d calls in %v (%.0f/s), %d failed; %d during the rotation (renewal triggered to new certificates in use, %v); longest pause between two calls %v",
		len(r), last.Sub(first).Round(time.Millisecond), float64(len(r))/last.Sub(first).Seconds(), len(failed),
		window(trigger, converged), converged.Sub(trigger).Round(time.Millisecond), l.longestGap().Round(time.Millisecond))
	name := func(s serials) string {
		return fmt.Sprintf("server %s/client %s", map[bool]string{true: "new", false: "old"}[s.server == want.server],
			map[bool]string{true: "new", false: "old"}[s.client == want.client])
	}
	for _, kind := range []string{longLived, fresh} {
		var parts []string
		for s, n := range counts[kind] {
			parts = append(parts, fmt.Sprintf("%d with %s", n, name(s)))
		}
		slices.Sort(parts)
		t.Logf("%s: %v", kind, parts)
	}
	for i, c := range failed {
		if i == 5 {
			t.Errorf("... and %d more", len(failed)-5)
			break
		}
		t.Errorf("a %s call failed %v after the renewal was triggered: %v", c.kind, c.done.Sub(trigger).Round(time.Millisecond), c.err)
	}
	if window(trigger, converged) == 0 || counts[longLived] == nil || counts[fresh][want] == 0 {
		t.Errorf("the load did not run through the rotation: %v", l.summary())
	}
}

// fileCert is the certificate in a mounted tls.crt.
func fileCert(t *testing.T, files testmesh.CertificateFiles) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(files.Cert)
	must(t, err)
	c, err := testcertmanager.ParseCertificate(data)
	must(t, err)
	return c
}

func secretCert(t *testing.T, s *corev1.Secret) *x509.Certificate {
	t.Helper()
	c, err := testcertmanager.ParseCertificate(s.Data[corev1.TLSCertKey])
	must(t, err)
	return c
}

// serials are the serials of the certificates a call went over: the one the server presented
// (seen by the client) and the client's (seen by the server).
type serials struct{ server, client string }

func (s serials) String() string { return "server " + s.server + ", client " + s.client }

// The kinds of calls of a load.
const (
	longLived = "long-lived connection" // one connection made before the rotation
	fresh     = "new connection"        // a new client (and connection) for each call
)

type result struct {
	kind          string
	dialled, done time.Time // dialled: when the call's connection was made
	got           serials
	err           error
}

// load makes calls until stopped: 8 goroutines every 25ms each on one long-lived connection
// (up to 320 calls/s), and 2 goroutines every 20ms each on a new client (its own xDS client and
// connection) for every call (up to 100 calls/s). Calls fail fast (no WaitForReady): a call on a
// connection that breaks, or whose handshake fails, fails.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	calls  []result
}

func startLoad(m *mesh, long *grpc.ClientConn) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	longClient := testgrpc.NewTestServiceClient(long)
	dialled := time.Now()
	for range 8 {
		l.wg.Go(func() {
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				got, err := call(ctx, longClient, false)
				l.record(ctx, result{kind: longLived, dialled: dialled, done: time.Now(), got: got, err: err})
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	for range 2 {
		l.wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				dialled := time.Now()
				conn, err := m.dial()
				var got serials
				if err == nil {
					got, err = call(ctx, testgrpc.NewTestServiceClient(conn), false)
					_ = conn.Close()
				}
				l.record(ctx, result{kind: fresh, dialled: dialled, done: time.Now(), got: got, err: err})
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		})
	}
	return l
}

// call makes one call and returns the serials of both certificates.
func call(ctx context.Context, c testgrpc.TestServiceClient, waitForReady bool) (serials, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var (
		p       peer.Peer
		trailer metadata.MD
	)
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(waitForReady), grpc.Peer(&p), grpc.Trailer(&trailer))
	if err != nil {
		return serials{}, err
	}
	got := serials{server: tlsPeerSerial(&p)}
	if v := trailer.Get(peerSerialKey); len(v) == 1 {
		got.client = v[0]
	}
	if got.server == "" || got.client == "" {
		return got, fmt.Errorf("not mutual TLS: %v", got)
	}
	return got, nil
}

// record keeps a call's result; a call cut short by the end of the load is not one.
func (l *load) record(ctx context.Context, r result) {
	if r.err != nil && ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	l.calls = append(l.calls, r)
	l.mu.Unlock()
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) results() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := slices.Clone(l.calls)
	slices.SortFunc(r, func(a, b result) int { return a.done.Compare(b.done) })
	return r
}

// waitFresh waits until a call on a connection made after since went over the want certificates,
// and returns when the first such call ended: every handshake after that uses them.
func (l *load) waitFresh(want serials, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, c := range l.results() {
			if c.kind == fresh && c.err == nil && c.got == want && c.dialled.After(since) {
				return c.done, true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// longestGap is the longest time between two calls' ends.
func (l *load) longestGap() time.Duration {
	r := l.results()
	var gap time.Duration
	for i := 1; i < len(r); i++ {
		gap = max(gap, r[i].done.Sub(r[i-1].done))
	}
	return gap
}

func (l *load) summary() string {
	r := l.results()
	n := map[string]int{}
	for _, c := range r {
		k := c.kind
		if c.err != nil {
			k += " failed"
		}
		n[k]++
	}
	return fmt.Sprint(n)
}
