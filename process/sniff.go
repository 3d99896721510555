package process

import (
	"mime"
	"net/http"
	"strings"
)

// htmlTypes are the media types of HTML pages.
var htmlTypes = map[string]bool{"text/html": true, "application/xhtml+xml": true}

// genericTypes are Content-Types that say nothing of what a body is:
// with one of them (or none), the body's first bytes say.
var genericTypes = map[string]bool{
	"": true, "application/octet-stream": true, "binary/octet-stream": true,
	"application/unknown": true, "unknown/unknown": true, "application/x-unknown": true, "*/*": true,
}

// notHTML is the media type of a body that is not HTML, or "" for one
// that is (or may be): contentType decides when it names a type; when it
// is absent, generic or unreadable, http.DetectContentType on head does,
// and only a type that is not text counts against the body (sniffing
// calls HTML without a known first tag text/plain, XHTML text/xml).
func notHTML(contentType string, head []byte) string {
	mt, _, err := mime.ParseMediaType(contentType)
	mt = strings.ToLower(mt)
	if err == nil && !genericTypes[mt] {
		if htmlTypes[mt] {
			return ""
		}
		return mt
	}
	sniffed, _, _ := mime.ParseMediaType(http.DetectContentType(head))
	if strings.HasPrefix(sniffed, "text/") {
		return ""
	}
	return sniffed
}
