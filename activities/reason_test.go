package activities

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A reason phrase may hold any byte but a line end (Go's client takes
// them): a hostile server's escape sequences would reach whoever prints
// the result's error (a terminal, `jq -r`). The error says them escaped.
func TestAHostileReasonPhraseIsEscapedInTheError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				fmt.Fprint(c, "HTTP/1.1 404 \x1b]0;owned\x07\x1b[2Jgone\rok \x9b\u202e\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	e := newFetchEnv(t, 64<<10)
	p := Policy{AttemptTimeout: 2 * time.Second, MaxAttempts: 1}
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf("http://" + ln.Addr().String() + "/x"), Concurrency: 1, Policy: p})[0]
	if it.Outcome != OutcomeHTTPError || it.Status != 404 {
		t.Fatalf("outcome %q, status %d: %q", it.Outcome, it.Status, it.Error)
	}
	if strings.ContainsFunc(it.Error, func(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u202e' || r == '\ufffd' }) {
		t.Errorf("the error holds what a terminal acts on: %q", it.Error)
	}
	if want := `HTTP 404 \x1b]0;owned\a\x1b[2Jgone\rok \x9b\u202e`; it.Error != want {
		t.Errorf("error %q, want %q", it.Error, want)
	}
}
