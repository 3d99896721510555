//go:build cluster

package crashtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards each connection it accepts to target. Blackholed, it
// is a partition: nothing more goes through, either way, on the
// connections open then and on those accepted meanwhile, and nothing
// tells either end. Healed, it closes those connections and forwards the
// next ones again.
type tcpProxy struct {
	t      *testing.T
	l      net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond // broadcast when cut turns false
	cut   bool
	conns map[*proxyConn]struct{}
}

type proxyConn struct {
	client, server net.Conn // server: nil until dialed
	partitioned    bool     // open during a blackhole: closed at the heal
}

func newTCPProxy(t *testing.T, listen, target string) *tcpProxy {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, l: l, target: target, conns: map[*proxyConn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the host:port the proxy listens on.
func (p *tcpProxy) Addr() string { return p.l.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		pc := &proxyConn{client: c}
		p.mu.Lock()
		pc.partitioned = p.cut
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		go p.forward(pc)
	}
}

func (p *tcpProxy) forward(pc *proxyConn) {
	defer p.drop(pc)
	if !p.pass(pc) {
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	pc.server = s
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copy(pc, s, pc.client) }()
	go func() { defer wg.Done(); p.copy(pc, pc.client, s) }()
	wg.Wait()
}

// copy forwards src to dst while the proxy lets pc through. At src's end
// it closes dst for writing (the other way may still carry an answer);
// on anything else it closes both ends, which ends the other way too.
func (p *tcpProxy) copy(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (!p.pass(pc) || !written(dst, buf[:n])) {
			pc.closeBoth()
			return
		}
		if err == io.EOF {
			_ = dst.(*net.TCPConn).CloseWrite()
			return
		}
		if err != nil {
			pc.closeBoth()
			return
		}
	}
}

func written(dst net.Conn, b []byte) bool {
	_, err := dst.Write(b)
	return err == nil
}

// pass waits out a blackhole and tells whether pc may still carry bytes.
func (p *tcpProxy) pass(pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cut {
		pc.partitioned = true
		p.cond.Wait()
	}
	return !pc.partitioned
}

func (p *tcpProxy) drop(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.closeBoth()
}

func (pc *proxyConn) closeBoth() {
	_ = pc.client.Close()
	if pc.server != nil {
		_ = pc.server.Close()
	}
}

// blackhole cuts the proxy off: see tcpProxy.
func (p *tcpProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pc := range p.conns {
		pc.partitioned = true
	}
}

// heal closes the connections the blackhole held and lets new ones through.
func (p *tcpProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for pc := range p.conns {
		if pc.partitioned {
			pc.closeBoth()
		}
	}
	p.cond.Broadcast()
}

func (p *tcpProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for pc := range p.conns {
		pc.closeBoth()
	}
	p.cond.Broadcast()
}
