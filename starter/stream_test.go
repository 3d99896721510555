package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	o := options{store: store, outFile: filepath.Join(t.TempDir(), "out.jsonl")}

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
	var streamed, inline workflows.Output
	if err := json.Unmarshal(doc.Bytes(), &streamed); err != nil {
		t.Fatalf("not JSON: %v\n%.300s", err, doc.String())
	}
	withResults := out
	withResults.Results = results
	b, _ := json.Marshal(withResults)
	_ = json.Unmarshal(b, &inline)
	a, _ := json.Marshal(streamed)
	if string(a) != string(b) {
		t.Errorf("the streamed document differs from the inline one:\n%.300s\n%.300s", a, b)
	}
	if sc := bufio.NewScanner(&doc); !sc.Scan() || sc.Text() != "{" {
		t.Errorf("not indented as before: %.100s", doc.String())
	}
}
