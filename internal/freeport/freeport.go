// Package freeport finds, for tests, free TCP ports on 127.0.0.1.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/batchfetch/batchfetch/internal/ports"
)

// Run returns a port p such that p to p+n-1 are free: a dev server with a
// database file takes its frontend port and the 7 after it (n = 8). The
// ports are taken below the system's ephemeral range where it can: a port
// in that range may become an outgoing connection's source port before the
// test binds it.
func Run(t testing.TB, n int) int {
	t.Helper()
	p, err := Find(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Find is Run for a program that is not a test (a benchmark command).
func Find(n int) (int, error) {
	lo := ports.EphemeralLow()
	for range 200 {
		base := 0
		if lo > 12000 {
			base = 10000 + rand.IntN(lo-10000-n)
		} else {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			base = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if free(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d free consecutive ports", n)
}

func free(base, n int) bool {
	if base+n > 65536 {
		return false
	}
	for p := base; p < base+n; p++ {
		c, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
