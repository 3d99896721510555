package activities

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxURLLength is the longest URL accepted, in bytes.
const MaxURLLength = 8192

// CheckURL says why raw cannot be fetched, or nil. Its message quotes the
// URL with any password hidden.
func CheckURL(raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("URL of %d bytes is over the limit of %d", len(raw), MaxURLLength)
	}
	if i := strings.IndexAny(raw, " \t"); i >= 0 {
		// A browser would send %20; a server given the space (or a
		// proxy) answers something else. Refused, so the list is fixed
		// where it was written.
		return fmt.Errorf("%q has a space or a tab at byte %d: encode it (%%20 for a space)", clip(redactRaw(raw)), i)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%q is not a URL: %v", clip(redactRaw(raw)), err)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in URLs are not accepted (they would be stored in workflow history)", clip(u.Redacted()))
	}
	if u.Scheme == "" || !u.IsAbs() {
		return fmt.Errorf("%q is not an absolute URL (want http:// or https://)", clip(redactRaw(raw)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme %q is not supported (want http or https)", clip(redactRaw(raw)), u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", clip(redactRaw(raw)))
	}
	return nil
}

// redactRaw hides what may be credentials (anything before an "@" in the
// authority) in a string that may not parse as a URL.
func redactRaw(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return raw[:start] + "xxxxx" + raw[at:]
}

// clip keeps messages readable when a value is huge.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
