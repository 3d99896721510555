package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"code.dny.dev/ssrf"
)

// Guard decides which addresses the fetcher may connect to. By default it
// refuses every address that is not publicly routable: loopback, private
// (RFC 1918, unique-local fc00::/7), link-local (cloud metadata services
// such as 169.254.169.254 live there), shared (100.64.0.0/10), unspecified,
// multicast and the like. Allow turns destinations back on.
//
// It is checked on the address actually dialled, after DNS: a name that
// resolves to an internal address, and a redirect to one, are refused too.
// Through a proxy, the worker connects to the proxy whatever its address,
// and each request's target is checked before it is sent (proxyGuard).
type Guard struct {
	// Allow lists destinations to permit anyway: CIDRs ("10.0.0.0/8"),
	// addresses ("127.0.0.1") or host names ("intranet.example").
	Allow []string
	// Off disables the guard (every address is allowed).
	Off bool
}

// BlockedError is a refused destination.
type BlockedError struct {
	Host string
	Addr netip.Addr
	Why  string
}

func (e *BlockedError) Error() string {
	host := ""
	if e.Host != "" && e.Host != e.Addr.String() {
		host = e.Host + " resolves to "
	}
	return fmt.Sprintf("refusing to connect: %s%s is %s (allow it with --allow)", host, e.Addr, e.Why)
}

// Blocked says why addr is not a public destination, or "" when it is.
// The ranges are code.dny.dev/ssrf's, taken from IANA's special-purpose
// registries: for IPv6, only global unicast (2000::/3) outside its
// special-purpose ranges is public. An IPv6 address that embeds an IPv4
// one is judged by that address: NAT64 (64:ff9b::/96) allows a public
// IPv4 host only; 6to4 (2002::/16) and IPv4-compatible (::/96) addresses
// are refused outright, naming the IPv4 address they hide.
func Blocked(addr netip.Addr) string {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return "not an address"
	}
	if addr.Is4() {
		return blocked4(addr)
	}
	b := addr.As16()
	switch {
	case ssrf.IPv6NAT64Prefix.Contains(addr):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if why := blocked4(v4); why != "" {
			return fmt.Sprintf("a NAT64 address for %s, which is %s", v4, why)
		}
		return ""
	case sixToFour.Contains(addr):
		return fmt.Sprintf("a 6to4 address (it embeds %s; 6to4 is deprecated)", netip.AddrFrom4([4]byte(b[2:6])))
	case ipv4Compatible.Contains(addr) && !addr.IsUnspecified() && !addr.IsLoopback():
		return fmt.Sprintf("an IPv4-compatible address (it embeds %s; the form is deprecated)", netip.AddrFrom4([4]byte(b[12:16])))
	}
	if why := common(addr); why != "" {
		return why
	}
	if !ssrf.IPv6GlobalUnicast.Contains(addr) {
		return "not a global unicast address (outside 2000::/3)"
	}
	for _, p := range ssrf.IPv6DeniedPrefixes {
		if p.Contains(addr) {
			return "in " + p.String() + ", a special-purpose range"
		}
	}
	return ""
}

var (
	sixToFour      = netip.MustParsePrefix("2002::/16")
	ipv4Compatible = netip.MustParsePrefix("::/96")
)

func blocked4(addr netip.Addr) string {
	if why := common(addr); why != "" {
		return why
	}
	for _, p := range ssrf.IPv4DeniedPrefixes {
		if p.Contains(addr) {
			switch p.String() {
			case "0.0.0.0/8":
				return `in "this network" (0.0.0.0/8)`
			case "100.64.0.0/10":
				return "a shared (carrier-grade NAT) address"
			}
			return "in " + p.String() + ", a special-purpose range"
		}
	}
	return ""
}

// common names the non-public kinds both families share.
func common(addr netip.Addr) string {
	switch {
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "a loopback address"
	case addr.IsPrivate():
		return "a private address"
	case addr.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata services live there)"
	case addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast(), addr.IsMulticast():
		return "a multicast address"
	}
	return ""
}

// CheckAllow says what is wrong with an allow list (Guard.Allow): a CIDR
// that does not parse, or an entry that is neither an address nor a host
// name.
func CheckAllow(allow []string) error {
	if _, err := (Guard{Allow: allow}).compile(); err != nil {
		return err
	}
	for _, s := range allow {
		s = strings.TrimSpace(s)
		if s == "" || strings.Contains(s, "/") {
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		for _, r := range strings.TrimSuffix(s, ".") {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return fmt.Errorf("allow %q: not a CIDR, an address or a host name", s)
			}
		}
	}
	return nil
}

type allowList struct {
	all      bool
	prefixes []netip.Prefix
	hosts    map[string]bool
	// proxy tells whether an address is a proxy the worker was given:
	// the operator's choice, connected to whatever it is when a request
	// goes through it (nil: none).
	proxy func(address string) bool
}

func (g Guard) compile() (*allowList, error) {
	a := &allowList{all: g.Off, hosts: map[string]bool{}}
	for _, s := range g.Allow {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("allow %q: %w", s, err)
			}
			a.prefixes = append(a.prefixes, p.Masked())
		default:
			if addr, err := netip.ParseAddr(s); err == nil {
				a.prefixes = append(a.prefixes, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			} else {
				a.hosts[strings.ToLower(strings.TrimSuffix(s, "."))] = true
			}
		}
	}
	return a, nil
}

func (a *allowList) allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return Blocked(addr) == ""
}

// dialer wraps a dialer with the guard: it resolves the host itself,
// checks every address, and connects only to an allowed one (so the
// address checked is the address dialled).
func (a *allowList) dialer(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		ctx, cancel := boundToAttempt(ctx)
		defer cancel()
		if a.all {
			return d.DialContext(ctx, network, address)
		}
		if a.proxy != nil && viaProxy(ctx) && a.proxy(address) {
			return d.DialContext(ctx, network, address)
		}
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if a.hosts[strings.ToLower(strings.TrimSuffix(host, "."))] {
			return d.DialContext(ctx, network, address)
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else {
			if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
				return nil, err
			}
		}
		var blocked error
		var lastErr error
		for _, ip := range addrs {
			if !a.allows(ip) {
				if blocked == nil {
					blocked = &BlockedError{Host: host, Addr: ip.Unmap(), Why: Blocked(ip)}
				}
				continue
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			lastErr = err
		}
		if lastErr != nil {
			return nil, lastErr
		}
		if blocked != nil {
			return nil, blocked
		}
		return nil, errors.New("no address to connect to")
	}
}
