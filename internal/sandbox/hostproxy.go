package sandbox

import (
	"io"
	"net"
	"net/url"
	"sync"
)

// hostProxy copies connections that arrive on a listener of the host's network to an address
// inside the sandbox: how kubectl on the host reaches the API server. It passes bytes through, so
// TLS is end to end.
type hostProxy struct {
	l    net.Listener
	to   string
	wg   sync.WaitGroup
	once sync.Once
}

func startHostProxy(l net.Listener, to string) *hostProxy {
	p := &hostProxy{l: l, to: to}
	p.wg.Go(p.serve)
	return p
}

func (p *hostProxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return // closed by stop
		}
		go p.pipe(in)
	}
}

func (p *hostProxy) pipe(in net.Conn) {
	defer func() { _ = in.Close() }()
	out, err := net.Dial("tcp", p.to)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

func (p *hostProxy) stop() {
	p.once.Do(func() { _ = p.l.Close() })
	p.wg.Wait()
}

// hostOf turns a URL (https://127.0.0.1:41234) into host:port.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}
