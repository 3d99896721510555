package crashtest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

// socks5Server is a SOCKS5 proxy of the test's own on 127.0.0.1 (RFC 1928,
// CONNECT only) that asks for user and password (RFC 1929), refuses any
// other, and connects to loopback targets only. It records each CONNECT.
type socks5Server struct {
	addr       string
	user, pass string
	mu         sync.Mutex
	connects   []string // "user:password target"
}

func newSOCKS5(t *testing.T, user, pass string) *socks5Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &socks5Server{addr: l.Addr().String(), user: user, pass: pass}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if err := s.serve(c); err != nil {
					c.Close()
				}
			}()
		}
	}()
	return s
}

func (s *socks5Server) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.connects...)
}

func (s *socks5Server) serve(c net.Conn) error {
	br := bufio.NewReader(c)
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 5 {
		return fmt.Errorf("greeting: %v", err)
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return err
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == 2
	}
	if !offered {
		_, _ = c.Write([]byte{5, 0xff})
		return fmt.Errorf("user/password not offered")
	}
	_, _ = c.Write([]byte{5, 2})
	user, pass, err := socks5Auth(br)
	if err != nil {
		return err
	}
	if user != s.user || pass != s.pass {
		_, _ = c.Write([]byte{1, 1})
		return fmt.Errorf("bad credentials")
	}
	_, _ = c.Write([]byte{1, 0})
	target, err := socks5Target(br)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.connects = append(s.connects, user+":"+pass+" "+target)
	s.mu.Unlock()
	host, _, _ := net.SplitHostPort(target)
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		_, _ = c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}) // not allowed by ruleset
		return fmt.Errorf("%s is not loopback", target)
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	_, _ = c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
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

func socks5Target(br *bufio.Reader) (string, error) {
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
