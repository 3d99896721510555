package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batchfetch/batchfetch/workflows"
)

// tableFlushEvery is how many rows the table aligns at a time: its
// columns are as wide as the widest of those, and only those rows are
// held.
const tableFlushEvery = 1000

// printTable prints the results as a table, one row per URL, and the
// summary line. A batch with a process step has an OUTPUT column (what the
// step found: an html page's title, an image's size), when the first
// rows show one.
func printTable(w io.Writer, out workflows.Output, each func(func(int, *workflows.Result) error) error) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var rows []string
	headed, output := false, false
	flush := func() error {
		if !headed {
			header := "#\tOUTCOME\tSTATUS\tATTEMPTS\tELAPSED\tSIZE\tSHA256\tURL"
			if output {
				header += "\tOUTPUT"
			}
			fmt.Fprintln(tw, header)
			headed = true
		}
		for _, row := range rows {
			fmt.Fprintln(tw, row)
		}
		rows = rows[:0]
		return tw.Flush()
	}
	err := each(func(i int, r *workflows.Result) error {
		row, stepOut := tableRow(i, r)
		output = output || stepOut
		rows = append(rows, row)
		if len(rows) == tableFlushEvery {
			if err := flush(); err != nil {
				return writeError{err}
			}
		}
		return nil
	})
	if ferr := flush(); err == nil && ferr != nil {
		err = writeError{ferr}
	}
	if err != nil {
		return err // the rows read so far are shown; the error says the rest is missing
	}
	fmt.Fprintf(tw, "\n%s\n", summary(out))
	return tw.Flush()
}

// tableRow is r's row, and whether it has a step's output.
func tableRow(i int, r *workflows.Result) (string, bool) {
	sum := r.SHA256
	if len(sum) > 16 {
		sum = sum[:16] + "…"
	}
	if r.Outcome != workflows.OutcomeOK && r.Outcome != workflows.OutcomeNotModified {
		sum = plainText(r.Error) // a final error, not how the SDK carried it
	}
	row := fmt.Sprintf("%d\t%s\t%d\t%d\t%s\t%d\t%s\t%s", i+1, r.Outcome, r.Status, r.Attempts,
		(time.Duration(r.ElapsedMS) * time.Millisecond).String(), r.Size, sum, shown(r.URL))
	step := shown(stepOutput(r)) // an earlier results file's output too
	if step == "" {
		return row, false
	}
	return row + "\t" + step, true
}

// outputWidth bounds the OUTPUT cell: the JSON output has it all.
const outputWidth = 60

// stepOutput says in a few words what r's process step found: the title
// and link count of an html page (or that the body is not HTML), the format and size of an image, the
// start of any other step's JSON; or where a large output is kept.
func stepOutput(r *workflows.Result) string {
	if len(r.Processed) == 0 {
		if r.ProcessedKey != "" {
			return "in the blob store: " + r.ProcessedKey
		}
		return ""
	}
	var f struct {
		Title   *string   `json:"title"`
		Links   *[]string `json:"links"`
		NotHTML string    `json:"not_html"`
		Format  string    `json:"format"`
		Width   *int      `json:"width"`
		Height  *int      `json:"height"`
	}
	_ = json.Unmarshal(r.Processed, &f) // another step's output: shown as it is
	switch {
	case f.Title != nil && f.Links != nil && f.NotHTML != "":
		return "not HTML: " + clip(f.NotHTML, outputWidth)
	case f.Title != nil && f.Links != nil:
		title := fmt.Sprintf("%q", clip(*f.Title, outputWidth))
		if *f.Title == "" {
			title = "(no title)"
		}
		links := fmt.Sprintf("%d links", len(*f.Links))
		if len(*f.Links) == 1 {
			links = "1 link"
		}
		return title + ", " + links
	case f.Width != nil && f.Height != nil:
		return strings.TrimSpace(fmt.Sprintf("%s %dx%d", f.Format, *f.Width, *f.Height))
	}
	return clip(string(r.Processed), outputWidth)
}

// clip shortens s to n runes, marking the cut: a column's width counts
// what a terminal shows (activities.Clip bounds bytes, for payloads).
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
