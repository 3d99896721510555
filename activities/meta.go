package activities

import (
	"net/http"
	"strings"
	"time"
)

// Meta is what a response said about its body: kept in the URL's result.
type Meta struct {
	ContentType  string `json:"ct,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lm,omitempty"`
	// Date is the response's Date: it tells whether LastModified is a
	// strong validator (strongDate).
	Date string `json:"date,omitempty"`
}

// The longest header values a result keeps: longer than any real content
// type, ETag or HTTP date.
const (
	maxContentType = 128
	maxETag        = 128
	maxDate        = 64 // Last-Modified and Date
)

// keepable tells whether a header value may go into a result: at most max
// bytes of printable ASCII, without the <, > and & that JSON escapes
// six-fold, so that a result's size stays bounded (see
// workflows.inlineFits).
func keepable(v string, max int) bool {
	if len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// metaOf reads a response's Meta. A value that is not keepable is left
// out.
func metaOf(h http.Header) Meta {
	get := func(k string, max int) string {
		if v := h.Get(k); keepable(v, max) {
			return v
		}
		return ""
	}
	return Meta{ContentType: get("Content-Type", maxContentType), ETag: get("ETag", maxETag),
		LastModified: get("Last-Modified", maxDate), Date: get("Date", maxDate)}
}

// strongDate tells whether a Last-Modified is a strong validator, given
// the Date of the response that sent it: it is, when at least a second
// older (RFC 9110, 8.8.2.2). A body changed again within the second of
// its Last-Modified keeps that date: the server cannot tell the two
// apart. Without a Date, nothing shows it is strong.
func strongDate(lastModified, date string) bool {
	modified, err1 := http.ParseTime(lastModified)
	sent, err2 := http.ParseTime(date)
	return err1 == nil && err2 == nil && sent.Sub(modified) >= time.Second
}

// weakMatch compares two ETags as If-None-Match does: W/ prefixes aside.
func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// askIfChanged makes req conditional on cond, an earlier result, when that
// result can stand for the body (it has a sha256) and has a validator to
// send: its ETag (If-None-Match), or else a strong Last-Modified
// (If-Modified-Since). Only one is sent, the ETag when there is one: a
// server that honours only dates would otherwise say 304 for a body that
// changed under the same date. A weak Last-Modified (within a second of its response's Date, or
// of no known Date) is not sent: a page rewritten within that second
// would be answered 304. It tells whether req is conditional.
func askIfChanged(req *http.Request, cond *Prev) bool {
	switch {
	case cond == nil || cond.SHA256 == "":
		return false
	case cond.ETag != "":
		req.Header.Set("If-None-Match", cond.ETag)
	case strongDate(cond.LastModified, cond.Date):
		req.Header.Set("If-Modified-Since", cond.LastModified)
	default:
		return false
	}
	return true
}
