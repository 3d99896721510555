package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// A large batch's results are printed from its results file as they are
// read: the table, the JSON document and --out hold every row, in order,
// and the JSON is the same document an inline batch prints.
func TestLargeResultsArePrintedFromTheFile(t *testing.T) {
	ctx := context.Background()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500 // more than one block of the table
	var results []workflows.Result
	var file bytes.Buffer
	enc := json.NewEncoder(&file)
	for i := range n {
		r := workflows.Result{URL: fmt.Sprintf("http://127.0.0.1/p/%d", i), Outcome: workflows.OutcomeOK, Status: 200, SHA256: fmt.Sprintf("%064x", i), Size: int64(i), Attempts: 1}
		if i%1000 == 7 {
			r = workflows.Result{URL: r.URL, Outcome: workflows.OutcomeHTTPError, Status: 404, Attempts: 1, Error: "HTTP 404 Not Found"}
		}
		results = append(results, r)
		_ = enc.Encode(r)
	}
	w, _ := store.Create(ctx, "results/run.jsonl")
	_, _ = w.Write(file.Bytes())
	_ = w.Commit()
	out := workflows.Output{OK: n - 3, Failed: 3, Total: n, ResultsFile: "results/run.jsonl"}
	o := options{store: store, batches: newBatches(testStack.Client, store, "", nil), outFile: filepath.Join(t.TempDir(), "out.jsonl")}

	var table bytes.Buffer
	if err := printOutput(ctx, &table, out, o); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != n+3 || !strings.HasPrefix(lines[0], "#") || lines[len(lines)-1] != fmt.Sprintf("%d ok, 3 failed", n-3) {
		t.Fatalf("%d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	for i, r := range results {
		f := strings.Fields(lines[i+1])
		if f[0] != fmt.Sprint(i+1) || f[1] != r.Outcome || f[len(f)-1] != r.URL {
			t.Fatalf("row %d: %q, want %s %s", i+1, lines[i+1], r.Outcome, r.URL)
		}
	}
	got, _ := os.ReadFile(o.outFile)
	if !bytes.Equal(got, file.Bytes()) {
		t.Errorf("--out differs from the results file")
	}

	o.jsonOut, o.outFile = true, ""
	var doc bytes.Buffer
	if err := printOutput(ctx, &doc, out, o); err != nil {
		t.Fatal(err)
	}
	// Byte for byte what the same output with its results inline prints.
	withResults := out
	withResults.Results = results
	var inline bytes.Buffer
	if err := printOutput(ctx, &inline, withResults, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc.Bytes(), inline.Bytes()) {
		t.Errorf("the streamed document differs from the inline one:\n%.300s\n%.300s", doc.String(), inline.String())
	}

	// --out may name the very file being read.
	o.jsonOut, o.outFile = false, filepath.Join(store.Root, "results", "run.jsonl")
	if err := printOutput(ctx, io.Discard, out, o); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(o.outFile); !bytes.Equal(got, file.Bytes()) {
		t.Errorf("--out onto the results file changed it: %d bytes, want %d", len(got), file.Len())
	}
}

// An empty results file prints as an inline batch with no results; one
// cut short prints the rows read, then fails.
func TestResultsFileEmptyOrCutShort(t *testing.T) {
	ctx := context.Background()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, text string) {
		w, _ := store.Create(ctx, key)
		_, _ = io.WriteString(w, text)
		_ = w.Commit()
	}
	put("results/empty.jsonl", "")
	out := workflows.Output{ResultsFile: "results/empty.jsonl"}
	var doc bytes.Buffer
	o := options{store: store, batches: newBatches(testStack.Client, store, "", nil)}
	o.jsonOut = true
	if err := printOutput(ctx, &doc, out, o); err != nil {
		t.Fatal(err)
	}
	want, _ := json.MarshalIndent(out, "", "  ")
	if doc.String() != string(want)+"\n" {
		t.Errorf("empty: %q, want %q (no results key, as encoding/json leaves it out)", doc.String(), want)
	}

	var lines strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&lines, `{"url":"http://127.0.0.1/%d","outcome":"ok","status":200,"size":1,"attempts":1,"elapsed_ms":1}`+"\n", i)
	}
	put("results/cut.jsonl", lines.String()+`{"url":"http://127.0.0.1/x","outc`)
	var table bytes.Buffer
	o.jsonOut = false
	err = printOutput(ctx, &table, workflows.Output{OK: 1501, Total: 1501, ResultsFile: "results/cut.jsonl"}, o)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitInternal {
		t.Fatalf("got %v, want an internal error", err)
	}
	if n := strings.Count(table.String(), "\n"); n != 1501 {
		t.Errorf("%d lines printed, want the header and the 1,500 rows read", n)
	}
}
