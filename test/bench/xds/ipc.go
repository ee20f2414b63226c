package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The server process and its client process talk over the client's stdin and stdout, one JSON
// message per line. The server process drives; the client process answers.

// Message kinds.
const (
	msgReady  = "ready"  // clients → server: every proxy holds and ACKed its initial config
	msgArm    = "arm"    // server → clients: the next publish is push Push, v1 at V1Weight
	msgArmed  = "armed"  // clients → server: proxies now look for that change
	msgT0     = "t0"     // server → clients: the change was published; clock started at T0
	msgResult = "result" // clients → server: every proxy ACKed the change (or the timeout hit)
	msgQuit   = "quit"   // server → clients: close the streams and exit
	msgError  = "error"  // clients → server: the run failed
)

type message struct {
	Kind     string        `json:"kind"`
	Push     int           `json:"push,omitempty"`
	V1Weight uint32        `json:"v1Weight,omitempty"`
	T0       int64         `json:"t0,omitempty"` // Unix nanoseconds; both processes read the same clock
	Initial  *initialStats `json:"initial,omitempty"`
	Result   *pushStats    `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// initialStats describe the proxies' initial fetch, as the client process saw it.
type initialStats struct {
	Seconds   float64 `json:"seconds"`
	Bytes     int64   `json:"bytes"` // proto.Size of every response received, summed over proxies
	Responses int64   `json:"responses"`
}

// pushStats describe one change, as the client process saw it. Times are from T0 to the moment
// a proxy had sent its ACK of the response that carried the change.
type pushStats struct {
	Acked     int     `json:"acked"`
	Min       float64 `json:"min"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	Max       float64 `json:"max"`
	Bytes     int64   `json:"bytes"` // responses received after arming, summed over proxies
	Responses int64   `json:"responses"`
	ClientCPU float64 `json:"clientCPU"` // CPU seconds of the client process over the push
}

// peer is one end of the pipe.
type peer struct {
	enc *json.Encoder
	in  chan message
	err chan error
}

func newPeer(r io.Reader, w io.Writer) *peer {
	p := &peer{enc: json.NewEncoder(w), in: make(chan message), err: make(chan error, 1)}
	go func() {
		dec := json.NewDecoder(r)
		for {
			var m message
			if err := dec.Decode(&m); err != nil {
				p.err <- err
				return
			}
			p.in <- m
		}
	}()
	return p
}

func (p *peer) send(m message) error { return p.enc.Encode(m) }

// expect waits at most timeout for the next message, which must be of kind.
func (p *peer) expect(kind string, timeout time.Duration) (message, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-p.in:
		switch m.Kind {
		case kind:
			return m, nil
		case msgError:
			return m, errors.New(m.Error)
		default:
			return m, fmt.Errorf("got %q, want %q", m.Kind, kind)
		}
	case err := <-p.err:
		return message{}, fmt.Errorf("waiting for %q: %w", kind, err)
	case <-timer.C:
		return message{}, fmt.Errorf("no %q within %s", kind, timeout)
	}
}
