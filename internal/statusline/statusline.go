// Package statusline serves, for tests, an HTTP server on 127.0.0.1 that
// answers every request with a status line of the caller's choosing,
// reason phrase included: net/http's server cannot send a long or odd one.
package statusline

import (
	"bufio"
	"fmt"
	"net"
	"testing"
)

// Serve starts the server and returns its base URL; it stops with the
// test. status is what follows "HTTP/1.1 ", e.g. "404 Not Found".
func Serve(t testing.TB, status string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go answer(c, status)
		}
	}()
	return "http://" + ln.Addr().String()
}

// answer reads each request's header and answers it with an empty body.
func answer(c net.Conn, status string) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l == "\r\n" {
				break
			}
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", status)
	}
}
