package devserver

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	"go.temporal.io/server/temporal"

	"github.com/batchfetch/batchfetch/internal/ports"
)

// errServer marks a failure of the Temporal server itself to start, which
// a port taken between picking it and binding it also gives.
var errServer = errors.New("devserver")

// startPicking starts a server; when it picked the ports itself and the
// server failed to start (another process may have bound one of them in
// between), it tries again on other ports, three times in all.
func startPicking(cfg Config) (*Server, error) {
	picked := cfg.Port == 0
	for try := 1; ; try++ {
		s, err := start(cfg)
		if err == nil || !picked || try == 3 || !errors.Is(err, errServer) {
			return s, err
		}
	}
}

// runServer makes and starts the Temporal server. It panics, rather than
// failing, on some bind errors: that is an error here too.
func runServer(opts ...temporal.ServerOption) (srv temporal.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("%w: the Temporal server failed to start: %v", errServer, r)
		}
	}()
	if srv, err = temporal.NewServer(opts...); err != nil {
		return nil, fmt.Errorf("%w: %w", errServer, err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting: %w", errServer, err)
	}
	return srv, nil
}

// freePort is a port free on ip now. It is taken below the system's
// ephemeral range where it can: a port in that range may become any
// outgoing connection's source port before the server binds it.
func freePort(ip string) (int, error) {
	if lo := ports.EphemeralLow(); lo > 12000 {
		for range 100 {
			p := 10000 + rand.IntN(lo-10000)
			if portFree(ip, p) == nil {
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("devserver: finding a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeBlock finds a port p such that p to p+n-1 are free on ip.
func freeBlock(ip string, n int) (int, error) {
	var last error
	for range 50 {
		p, err := freePort(ip)
		if err != nil {
			return 0, err
		}
		ok := p+n-1 <= 65535
		if !ok {
			last = fmt.Errorf("port %d is too near the top", p)
		}
		for q := p + 1; ok && q < p+n; q++ {
			if last = portFree(ip, q); last != nil {
				ok = false
			}
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("devserver: no %d free ports in a row on %s: %w", n, ip, last)
}

func portFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("devserver: %s:%d is taken (another Temporal server running? pick another port): %w", ip, port, err)
	}
	return l.Close()
}
