package activities

import (
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// hostKey is one key for a host however a URL spells it: an address in
// its canonical form (an IPv4 address mapped into IPv6, or written as
// one number or in hex or octal parts, as its dotted form), a name
// lower-cased, without its final dot and in its ASCII (punycode) form.
func hostKey(h string) string {
	h = strings.TrimSuffix(h, ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	if a, ok := ipv4Forms(h); ok {
		return a.String()
	}
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		h = a
	}
	return strings.ToLower(h)
}

// ipv4Forms reads the other spellings of an IPv4 address that a resolver
// takes ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"): one to four
// parts, each decimal, hex (0x) or octal (a leading 0), the last filling
// the bytes left.
func ipv4Forms(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		base, digits := 10, p
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil || digits == "" || digits[0] == '+' {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 255 {
				return netip.Addr{}, false
			}
			n = n<<8 | v
			continue
		}
		room := uint(8 * (4 - i)) // bits the last part fills
		if v >= 1<<room {
			return netip.Addr{}, false
		}
		n = n<<room | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
