// Package freeport finds, for tests, free TCP ports on 127.0.0.1.
package freeport

import (
	"fmt"
	"net"
	"testing"
)

// Run returns a port p such that p to p+n-1 are free: a dev server with a
// database file takes its frontend port and the 7 after it (n = 8).
func Run(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := base+n <= 65536
		for p := base; ok && p < base+n; p++ {
			c, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0
}
