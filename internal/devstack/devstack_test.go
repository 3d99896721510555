package devstack_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/freeport"
)

// TestStartOnAPortInUseFailsCleanly: a port taken by another program is an
// error that says so, and nothing is left running (no panic on the way).
func TestStartOnAPortInUseFailsCleanly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := devstack.Start(context.Background(), devstack.Config{Port: port})
	if err == nil {
		s.Stop()
		t.Fatalf("started on port %d, which is in use", port)
	}
	if s != nil {
		t.Errorf("got a stack with the error %v", err)
	}
	if !strings.Contains(err.Error(), "in use") && !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q does not say the port is in use", err)
	}
	var nilStack *devstack.Stack
	nilStack.Stop() // a nil stack stops without a panic
}

// TestDemoSiteKeepsItsAddress: a stack on the same database file serves
// the demo site where it was, so a batch interrupted with it resumes on
// URLs that still answer.
func TestDemoSiteKeepsItsAddress(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.sqlite")
	start := func() string {
		s, err := devstack.Start(context.Background(), devstack.Config{DBFile: db, Port: freeport.Run(t, 8), DemoSite: true, NoWorkers: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		urls := s.DemoURLs(1)
		resp, err := http.Get(urls[0])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", urls[0], resp.Status)
		}
		return urls[0]
	}
	first := start()
	if again := start(); again != first {
		t.Errorf("the demo site moved from %s to %s", first, again)
	}
}
