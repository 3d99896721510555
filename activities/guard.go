package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Guard decides which addresses the fetcher may connect to. By default it
// refuses every address that is not publicly routable: loopback, private
// (RFC 1918, unique-local fc00::/7), link-local (cloud metadata services
// such as 169.254.169.254 live there), shared (100.64.0.0/10), unspecified,
// multicast and the like. Allow turns destinations back on.
//
// It is checked on the address actually dialled, after DNS: a name that
// resolves to an internal address, and a redirect to one, are refused too.
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
func Blocked(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "not an address"
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
	for _, p := range special {
		if p.prefix.Contains(addr) {
			return p.why
		}
	}
	return ""
}

// special are the non-public ranges netip has no method for.
var special = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `in "this network" (0.0.0.0/8)`},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
}

type allowList struct {
	all      bool
	prefixes []netip.Prefix
	hosts    map[string]bool
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
		if a.all {
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
