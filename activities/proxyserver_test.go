package activities

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// The proxies of these tests only ever connect to loopback.
func loopbackOnly(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("test proxy: %s is not a loopback address", host)
	}
	return nil
}

// seen is what a test proxy saw of one request or connection.
type seen struct {
	Method, Target, ProxyAuth, User, Pass string
}

type record struct {
	mu     sync.Mutex
	saw    []seen
	agents []string // the User-Agent of each request an HTTP proxy got
	conns  atomic.Int32
}

func (r *record) add(s seen) {
	r.mu.Lock()
	r.saw = append(r.saw, s)
	r.mu.Unlock()
}

func (r *record) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.saw...)
}

// httpProxy is an HTTP proxy on addr (host:0): CONNECT tunnels and
// absolute-form forwarding. With auth set, a request without that
// Proxy-Authorization gets a 407.
func httpProxy(t *testing.T, addr, auth string) (*httptest.Server, *record) {
	rec := &record{}
	forward := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pa := r.Header.Get("Proxy-Authorization")
		target := r.Host
		if r.Method != http.MethodConnect {
			target = r.URL.Host
		}
		rec.add(seen{Method: r.Method, Target: target, ProxyAuth: pa})
		rec.mu.Lock()
		rec.agents = append(rec.agents, r.UserAgent())
		rec.mu.Unlock()
		if auth != "" && pa != auth {
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
			return
		}
		if err := loopbackOnly(target); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if r.Method == http.MethodConnect {
			tunnel(w, target)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Authorization")
		out.Header.Del("Proxy-Connection")
		resp, err := forward.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	srv := listenOn(t, addr, h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rec.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, rec
}

func listenOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	return srv
}

func tunnel(w http.ResponseWriter, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	pipe(conn, buf.Reader, up)
}

// pipe copies both ways until either side ends, then closes both.
func pipe(conn net.Conn, r io.Reader, up net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, r); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
	conn.Close()
	up.Close()
}

// socks5Proxy is a SOCKS5 server on 127.0.0.1 (RFC 1928), CONNECT only.
// With user set it asks for user/password (RFC 1929) and refuses others;
// without, it takes no authentication.
func socks5Proxy(t *testing.T, user, pass string) (string, *record) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rec := &record{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rec.conns.Add(1)
			go func() {
				if err := socks5Serve(c, user, pass, rec); err != nil {
					c.Close()
				}
			}()
		}
	}()
	return l.Addr().String(), rec
}

func socks5Serve(c net.Conn, user, pass string, rec *record) error {
	br := bufio.NewReader(c)
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 5 {
		return fmt.Errorf("greeting: %v", err)
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return err
	}
	want := byte(0)
	if user != "" {
		want = 2
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		_, _ = c.Write([]byte{5, 0xff})
		return fmt.Errorf("method %d not offered", want)
	}
	_, _ = c.Write([]byte{5, want})
	var s seen
	if want == 2 {
		u, p, err := socks5Auth(br)
		if err != nil {
			return err
		}
		s.User, s.Pass = u, p
		if u != user || p != pass {
			rec.add(s)
			_, _ = c.Write([]byte{1, 1})
			return fmt.Errorf("bad credentials")
		}
		_, _ = c.Write([]byte{1, 0})
	}
	target, err := socks5Request(br)
	if err != nil {
		return err
	}
	s.Method, s.Target = "CONNECT", target
	rec.add(s)
	if err := loopbackOnly(target); err != nil {
		_, _ = c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}) // not allowed by ruleset
		return err
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	_, _ = c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	pipe(c, br, up)
	return nil
}

func socks5Auth(br *bufio.Reader) (user, pass string, err error) {
	field := func() (string, error) {
		n, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b), err
	}
	if v, err := br.ReadByte(); err != nil || v != 1 {
		return "", "", fmt.Errorf("auth version: %v", err)
	}
	if user, err = field(); err != nil {
		return "", "", err
	}
	pass, err = field()
	return user, pass, err
}

func socks5Request(br *bufio.Reader) (string, error) {
	var h [4]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != 5 || h[1] != 1 {
		return "", fmt.Errorf("request: %v %v", h, err)
	}
	var host string
	switch h[3] {
	case 1, 4:
		b := make([]byte, map[byte]int{1: 4, 4: 16}[h[3]])
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		ip, _ := netip.AddrFromSlice(b)
		host = ip.String()
	case 3:
		n, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		host = string(b)
	default:
		return "", fmt.Errorf("address type %d", h[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(br, port[:]); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}
