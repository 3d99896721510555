package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/batchfetch/batchfetch/activities"
)

// maxEntryLine is the longest JSON line a urls_file may hold: the stage
// step reads no longer one.
const maxEntryLine = activities.MaxEntryLine

// givenURLs are a batch's URLs as they were given: from the arguments, a
// file or stdin. A file's line that starts with "{" is a JSON object
// ({"url", "headers", "method", "body", "retry_non_idempotent"}) that
// says how its URL is asked for.
type givenURLs struct {
	urls []string
	// own, parallel to urls (or nil), are the URLs' own request fields.
	own []*activities.RequestFields
	// places, parallel to urls, say where each came from; source
	// names the file or stdin the lines came from ("" for none).
	places []place
	source string
	// skipped are the entries left out as invalid (--skip-invalid).
	skipped []invalidEntry
}

// readURLs collects URLs from args, a file, or stdin when it is not a
// terminal. With skip, a JSON line that cannot be read is left out and
// listed in skipped instead of refusing the list.
func readURLs(args []string, file string, stdin io.Reader, useStdin, skip bool) (givenURLs, error) {
	l := givenURLs{urls: append([]string(nil), args...)}
	for i := range args {
		l.places = append(l.places, place{arg: i + 1})
	}
	var r io.Reader
	name := file
	switch {
	case file == "-":
		r, name = stdin, "stdin"
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return l, fmt.Errorf("reading URLs: %w", err)
		}
		defer f.Close()
		r = f
	case urlsFromStdin(args, file, useStdin) && !isTerminal(stdin):
		r, name = stdin, "stdin"
	}
	if r == nil {
		return l, nil
	}
	l.source = name
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(s, "{") {
			if err := l.addEntry(s); err != nil {
				if !skip {
					return l, fmt.Errorf("invalid input: %s line %d: %w", name, line, err)
				}
				l.skipped = append(l.skipped, invalidEntry{place{line: line}, err})
				continue
			}
			l.places = append(l.places, place{line: line})
			continue
		}
		if i := strings.Index(s, "#"); i == 0 || (i > 0 && (s[i-1] == ' ' || s[i-1] == '\t')) {
			s = strings.TrimSpace(s[:i])
		}
		if s != "" {
			l.urls = append(l.urls, s)
			l.places = append(l.places, place{line: line})
		}
	}
	if err := sc.Err(); err != nil {
		return l, fmt.Errorf("reading URLs from %s: %w", name, err)
	}
	return l, nil
}

// place is where a URL was given: the argument or the line (from 1).
type place struct{ arg, line int }

// where says where the i-th URL came from: "argument 2", "urls.txt line
// 17".
func (l givenURLs) where(i int) string {
	return l.placeText(l.places[i], true)
}

func (l givenURLs) placeText(p place, withSource bool) string {
	switch {
	case p.arg > 0:
		return fmt.Sprintf("argument %d", p.arg)
	case withSource:
		return fmt.Sprintf("%s line %d", l.source, p.line)
	}
	return fmt.Sprintf("line %d", p.line)
}

// urlsFromStdin tells whether readURLs would read the URLs from stdin
// (when it is not a terminal).
func urlsFromStdin(args []string, file string, useStdin bool) bool {
	return file == "-" || file == "" && len(args) == 0 && useStdin
}

// addEntry adds the URL of a JSON line, with its own request fields.
// Comments are not stripped from it: a '#' in a value is the value's.
func (l *givenURLs) addEntry(line string) error {
	if len(line) > maxEntryLine {
		return fmt.Errorf("a JSON line of %d bytes is over the limit of %d", len(line), maxEntryLine)
	}
	var e activities.URLEntry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return err
	}
	if _, err := e.RequestFields.Request(); err != nil {
		return err
	}
	if !e.RequestFields.Empty() {
		for len(l.own) < len(l.urls) {
			l.own = append(l.own, nil)
		}
		l.own = append(l.own, &e.RequestFields)
	}
	l.urls = append(l.urls, e.URL)
	return nil
}
