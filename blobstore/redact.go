package blobstore

import (
	"net/url"
	"strings"
)

// Redacted is location as messages, logs and a worker's identity say it:
// without the user and password a URL may hold, its own or an endpoint's
// in its query (s3://bucket?endpoint=http://user:pass@host). The object
// stores take their credentials from the environment, not the URL, so
// what is left out opens the same store. A location that names a scheme
// but does not parse is said without what comes before its last @.
func Redacted(location string) string {
	scheme, rest, isURL := strings.Cut(location, "://")
	if !isURL {
		return location // a path
	}
	u, err := url.Parse(location)
	if err != nil {
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			return scheme + "://…@" + rest[i+1:]
		}
		return location
	}
	u.User = nil
	if q, ok := redactedQuery(u.RawQuery); ok {
		u.RawQuery = q
	}
	return u.String()
}

// redactedQuery is raw without the users and passwords of the URLs its
// values hold; ok is false when it holds none (raw stands as written).
func redactedQuery(raw string) (string, bool) {
	if !strings.Contains(raw, "@") {
		return raw, false
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", true // said without its query rather than with a password
	}
	found := false
	for _, vs := range q {
		for i, v := range vs {
			if u, err := url.Parse(v); err == nil && u.User != nil {
				u.User = nil
				vs[i], found = u.String(), true
			} else if err != nil && strings.Contains(v, "@") {
				vs[i], found = "…", true
			}
		}
	}
	return q.Encode(), found
}
