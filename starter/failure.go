package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sdkNoise are the parts of a Temporal failure's text that say how the
// SDK carried it, not what went wrong: "(type: WrongBlobStore,
// retryable: true)", "activity error (type: HashChunk, scheduledEventID:
// 11, ...): ".
var sdkNoise = []*regexp.Regexp{
	regexp.MustCompile(`\s*\(type: [^,()]*, retryable: (true|false)\)`),
	regexp.MustCompile(`(activity|workflow execution|child workflow execution) error \([^()]*\): `),
}

// plainFailure is a failure's text as a person reads it: what went
// wrong, without the SDK's notes on how it travelled.
func plainFailure(err error) string {
	return plainText(err.Error())
}

// plainText is plainFailure for a message already taken out of its error
// (a result's error, an activity's last failure), made shown text.
func plainText(msg string) string {
	for _, re := range sdkNoise {
		msg = re.ReplaceAllString(msg, "")
	}
	return shown(strings.TrimSpace(msg))
}

// shown is s as a terminal shows it rather than acts on it: a text from
// elsewhere (a server's reason phrase, an earlier results file) may hold
// escape sequences that set a terminal's title, clear it or move its
// cursor over what was said. Spaces of every kind are one space; other
// characters that are not printed (controls, a right-to-left override,
// bytes that are not UTF-8) are written as Go escapes them (\x1b).
func shown(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		s = s[size:]
	}
	return b.String()
}
