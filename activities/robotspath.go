package activities

import (
	"bytes"
	"net"
	"net/url"
	"strings"
)

// robotsOrigin is the origin whose robots.txt holds for u: its scheme and
// host in lower case, and its port unless it is the scheme's own
// (http://h:80/ and http://h/ share one robots.txt).
func robotsOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	return scheme + "://" + host
}

// normalizeRobotsPath puts a path (of a rule, or of a URL with its query)
// in the one form RFC 9309 compares: a percent-encoded unreserved
// character decoded, any other percent-encoding in upper case, and a
// byte a URL may not hold as is (UTF-8, a space) percent-encoded.
// Matching stays case-sensitive.
func normalizeRobotsPath(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if unreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[v>>4])
				b.WriteByte(hex[v&15])
			}
			i += 2
		case c >= 0x80 || c <= ' ' || c == 0x7f:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// normalizeRules puts the paths of a robots.txt's Allow and Disallow
// lines in normalizeRobotsPath's form; every other line stays as it is.
func normalizeRules(body []byte) []byte {
	lines := bytes.Split(body, []byte("\n"))
	for i, line := range lines {
		field, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(string(field))) {
		case "allow", "disallow":
		default:
			continue
		}
		comment := []byte(nil)
		if j := bytes.IndexByte(value, '#'); j >= 0 {
			value, comment = value[:j], value[j:]
		}
		path := normalizeRobotsPath(strings.TrimSpace(string(value)))
		lines[i] = append(append(append(append([]byte(nil), field...), ": "...), path...), comment...)
	}
	return bytes.Join(lines, []byte("\n"))
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// unreserved: RFC 3986's unreserved characters.
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
