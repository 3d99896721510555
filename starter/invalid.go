package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/workflows"
)

// skippedShown is how many skipped entries the report names.
const skippedShown = 5

// invalidEntry is an entry of the list that the workflow would refuse,
// and why.
type invalidEntry struct {
	place
	err error
}

// readList reads the batch's URLs (the arguments, --file, stdin) into
// o.list and checks each entry as the workflow will: its URL, then its
// own request fields merged with the batch's. The first invalid entry
// refuses the list, named where it was given. With --skip-invalid every
// invalid entry is left out instead and reported on stderr; a list with
// entries but none valid is refused.
func (o *options) readList(positional []string, stdin io.Reader, useStdin bool, stderr io.Writer) error {
	l, err := readURLs(positional, o.file, stdin, useStdin, o.skipInvalid)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	keep := make([]bool, len(l.urls))
	for i := range l.urls {
		err := l.check(i, o.input.RequestFields)
		if err == nil {
			keep[i] = true
			continue
		}
		if !o.skipInvalid {
			hint := ""
			if u := l.urls[i]; i == 0 && len(positional) > 0 && !strings.ContainsAny(u, ":/.") {
				hint = " (not a URL; commands are start, status, cancel, results, bodies, gc and schedule)"
			}
			return &exitError{exitUsage, fmt.Errorf("invalid input: %s: %w%s", l.where(i), err, hint)}
		}
		l.skipped = append(l.skipped, invalidEntry{l.places[i], err})
	}
	l.keepOnly(keep)
	o.list = l
	if len(l.skipped) == 0 {
		return nil
	}
	fmt.Fprint(stderr, l.skippedReport())
	if len(l.urls) == 0 {
		return &exitError{exitUsage, fmt.Errorf("no valid URLs left: every one of the %d entries given is invalid (--skip-invalid skipped them all)", len(l.skipped))}
	}
	return nil
}

// check tells why the workflow would refuse the i-th entry, if it would.
func (l givenURLs) check(i int, batch activities.RequestFields) error {
	if err := workflows.CheckURL(l.urls[i]); err != nil {
		return err
	}
	if i >= len(l.own) || l.own[i] == nil {
		return nil
	}
	merged, err := batch.Request()
	if err != nil {
		return nil // the batch's own fields are refused by finishRequest, naming the flag
	}
	own, err := l.own[i].Request()
	if err == nil {
		err = activities.CheckMerged(activities.MergeRequests(merged, own))
	}
	return err
}

// keepOnly leaves in the list the entries keep marks.
func (l *givenURLs) keepOnly(keep []bool) {
	var urls []string
	var places []place
	var own []*activities.RequestFields
	anyOwn := false
	for i, ok := range keep {
		if !ok {
			continue
		}
		urls, places = append(urls, l.urls[i]), append(places, l.places[i])
		var f *activities.RequestFields
		if i < len(l.own) {
			f = l.own[i]
		}
		own = append(own, f)
		anyOwn = anyOwn || f != nil
	}
	if !anyOwn {
		own = nil
	}
	l.urls, l.places, l.own = urls, places, own
}

// skippedReport says how many entries were skipped, and the first few
// with where they were and why:
//
//	skipped 3 invalid lines of urls.txt:
//	  line 4: "ftp://host/x": scheme "ftp" is not supported (want http or https)
func (l givenURLs) skippedReport() string {
	s := append([]invalidEntry(nil), l.skipped...)
	sort.SliceStable(s, func(a, b int) bool {
		if (s[a].arg > 0) != (s[b].arg > 0) {
			return s[a].arg > 0 // the arguments come first
		}
		return s[a].arg < s[b].arg || s[a].line < s[b].line
	})
	args := 0
	for _, e := range s {
		if e.arg > 0 {
			args++
		}
	}
	lines := len(s) - args
	var b strings.Builder
	switch {
	case lines == 0:
		fmt.Fprintf(&b, "skipped %s:\n", plural(args, "invalid argument"))
	case args == 0:
		fmt.Fprintf(&b, "skipped %s of %s:\n", plural(lines, "invalid line"), l.source)
	default:
		fmt.Fprintf(&b, "skipped %d invalid entries (%s, %s of %s):\n", len(s), plural(args, "argument"), plural(lines, "line"), l.source)
	}
	for i, e := range s {
		if i == skippedShown {
			fmt.Fprintf(&b, "  and %d more\n", len(s)-skippedShown)
			break
		}
		fmt.Fprintf(&b, "  %s: %v\n", l.placeText(e.place, args > 0 && lines > 0), e.err)
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
