package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// settle is how long the client process keeps counting bytes after the last ACK of a push, so
// that a response sent twice, or late, shows in the figures.
const settle = 200 * time.Millisecond

// runClients is the client process: it connects the proxies to addr and answers the server
// process on stdin/stdout. It runs in its own process so that the server's memory and CPU figures
// hold the server only.
func runClients(c config, addr string) error {
	p := newPeer(os.Stdin, os.Stdout)
	err := clients(c, addr, p)
	if err != nil {
		_ = p.send(message{Kind: msgError, Error: err.Error()})
	}
	return err
}

func clients(c config, addr string, p *peer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	conns := make([]*grpc.ClientConn, c.conns)
	codec := newACKCodec()
	for i := range conns {
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.ForceCodecV2(codec)))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		conns[i] = conn
	}

	f := newFleet(c.proxies, c.pushes, c.parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: the proxies stop first
	start := time.Now()
	for i := range c.proxies {
		sub := newSubscription(watchedServices(i, c.watch, c.services))
		conn, node, ps := conns[i%len(conns)], proxyNode(i), newProxyState(f, sub)
		run := (&sotwProxy{conn: conn, node: node, sub: sub, ps: ps}).run
		if c.mode == "delta" {
			run = (&deltaProxy{conn: conn, node: node, sub: sub, ps: ps}).run
		}
		wg.Go(func() { runProxy(ctx, run, f, i) })
	}

	if err := waitN(f.ready, c.proxies, c.initialTimeout, f.failed); err != nil {
		return fmt.Errorf("initial configuration: %w", err)
	}
	initial := &initialStats{
		Seconds:   time.Since(start).Seconds(),
		Bytes:     f.initialBytes.Load(),
		Responses: f.initialResponses.Load(),
	}
	if err := p.send(message{Kind: msgReady, Initial: initial}); err != nil {
		return err
	}

	for {
		m, err := p.expect(msgArm, c.initialTimeout)
		if err != nil {
			if m.Kind == msgQuit {
				return nil
			}
			return err
		}
		if stray := f.pushBytes.Swap(0); stray != 0 {
			fmt.Fprintf(os.Stderr, "bench-xds: %d bytes of responses arrived between pushes\n", stray)
		}
		f.pushResponses.Store(0)
		f.armed.Store(&expectation{push: m.Push, v1Weight: m.V1Weight})
		if err := p.send(message{Kind: msgArmed}); err != nil {
			return err
		}
		cpu0 := cpuSeconds()
		t0msg, err := p.expect(msgT0, c.pushTimeout)
		if err != nil {
			return err
		}
		res, err := collectPush(f, c, m.Push, t0msg.T0)
		if err != nil {
			return err
		}
		res.ClientCPU = cpuSeconds() - cpu0
		if err := p.send(message{Kind: msgResult, Result: res}); err != nil {
			return err
		}
	}
}

// collectPush waits for every proxy's ACK of push (or the push timeout) and sums up.
func collectPush(f *fleet, c config, push int, t0 int64) (*pushStats, error) {
	deadline := time.NewTimer(c.pushTimeout)
	defer deadline.Stop()
	var acks []ackRecord
	for len(acks) < c.proxies {
		select {
		case a := <-f.acks:
			if a.push == push {
				acks = append(acks, a)
			}
		case err := <-f.failed:
			return nil, err
		case <-deadline.C:
			fmt.Fprintf(os.Stderr, "bench-xds: push %d: %d of %d proxies ACKed within %s\n", push, len(acks), c.proxies, c.pushTimeout)
			return statsOf(f, acks, t0), nil
		}
	}
	time.Sleep(settle)
	return statsOf(f, acks, t0), nil
}

// statsOf sums up a push and starts the byte counts afresh, so that anything counted before the
// next push is reported as stray.
func statsOf(f *fleet, acks []ackRecord, t0 int64) *pushStats {
	minS, p50, p99, maxS := latencyStats(acks, t0)
	return &pushStats{
		Acked: len(acks), Min: minS, P50: p50, P99: p99, Max: maxS,
		Bytes: f.pushBytes.Swap(0), Responses: f.pushResponses.Swap(0),
	}
}

// waitN takes n values from ch within timeout, unless failed reports an error first.
func waitN(ch <-chan struct{}, n int, timeout time.Duration, failed <-chan error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for got := 0; got < n; got++ {
		select {
		case <-ch:
		case err := <-failed:
			return err
		case <-deadline.C:
			return fmt.Errorf("%d of %d proxies ready within %s", got, n, timeout)
		}
	}
	return nil
}
