package activities

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestBlockedClassifiesAddresses(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.0.0.2", "::1", // loopback
		"10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12:3456::1", "fc00::1", // private, unique-local
		"169.254.169.254", "169.254.0.1", "fe80::1", // link-local, the metadata service
		"fd00:ec2::254",                 // AWS's IPv6 metadata address
		"100.64.0.1", "100.127.255.254", // carrier-grade NAT
		"0.0.0.0", "::", "0.1.2.3", // unspecified, this network
		"224.0.0.1", "ff02::1", // multicast
		"198.18.0.1", "240.0.0.1", "255.255.255.255", "192.0.0.8",
		"::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
	}
	for _, s := range blocked {
		if Blocked(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s is allowed, want it refused", s)
		}
	}
	for _, s := range []string{"93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1", "172.32.0.1", "::ffff:8.8.8.8",
		"64:ff9b::808:808", // NAT64 for 8.8.8.8, on a DNS64 network
	} {
		if why := Blocked(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s is refused (%s), want it allowed", s, why)
		}
	}
}

// IPv6 forms that embed an IPv4 address are judged by that address, or
// refused outright; the reason names the address they hide.
func TestBlockedSeesIPv4InsideIPv6(t *testing.T) {
	for addr, want := range map[string]string{
		"64:ff9b::a9fe:a9fe":   "169.254.169.254", // NAT64: the metadata service on a DNS64 network
		"64:ff9b::7f00:1":      "127.0.0.1",
		"64:ff9b::a00:1":       "10.0.0.1",
		"64:ff9b::c0a8:101":    "192.168.1.1",
		"2002:a9fe:a9fe::1":    "169.254.169.254", // 6to4
		"2002:7f00:1::":        "127.0.0.1",
		"2002:808:808::1":      "8.8.8.8",         // refused too: 6to4 is deprecated
		"::a9fe:a9fe":          "169.254.169.254", // IPv4-compatible
		"::10.0.0.1":           "10.0.0.1",
		"64:ff9b:1::a9fe:a9fe": "", // local-use NAT64: refused, whatever it embeds
		"2001:0:4136:e378::1":  "", // Teredo
		"2001:db8::1":          "", // documentation
	} {
		why := Blocked(netip.MustParseAddr(addr))
		if why == "" {
			t.Errorf("%s is allowed, want it refused", addr)
		} else if want != "" && !strings.Contains(why, want) {
			t.Errorf("%s refused as %q, want the reason to name %s", addr, why, want)
		}
	}
}

func TestAllowList(t *testing.T) {
	a, err := Guard{Allow: []string{"10.0.0.0/8", "127.0.0.1", "Intranet.Example."}}.compile()
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"10.9.9.9": true, "127.0.0.1": true, "127.0.0.2": false, "192.168.0.1": false, "::ffff:10.1.1.1": true} {
		if got := a.allows(netip.MustParseAddr(s)); got != want {
			t.Errorf("allows(%s) = %v, want %v", s, got, want)
		}
	}
	if !a.hosts["intranet.example"] {
		t.Errorf("host names are not matched case-insensitively: %v", a.hosts)
	}
	if _, err := (Guard{Allow: []string{"10.0.0.0/33"}}).compile(); err == nil {
		t.Errorf("a bad CIDR was accepted")
	}
}

// The forbidden stand-ins are other loopback addresses (127.0.0.2, ::1):
// only 127.0.0.1 is allowed. A listener on 127.0.0.2 proves that nothing
// connected there.
func TestGuardRefusesBeforeConnecting(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer l.Close()
	forbidden := "http://" + l.Addr().String() + "/secret"
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, forbidden, http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("public"))
	}))
	defer allowed.Close()

	e := newFetchEnv(t, 0)
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Concurrency: 4, Policy: quick, URLs: chunkOf(
		allowed.URL+"/ok", forbidden, allowed.URL+"/redirect", "http://[::1]:1/x")})
	if items[0].Outcome != "" {
		t.Errorf("the allowed server was refused: %+v", items[0])
	}
	for _, it := range items[1:] {
		if it.Outcome != OutcomeError || it.Attempts != 1 || !strings.Contains(it.Error, "refusing to connect") {
			t.Errorf("%s: got %+v, want refused after one attempt", it.URL, it)
		}
	}
	if !strings.Contains(items[1].Error, "127.0.0.2 is a loopback address") {
		t.Errorf("the error does not say what was refused: %q", items[1].Error)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the forbidden address", n)
	}
}
