package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// runResults runs `starter results WORKFLOW_ID`: a finished batch's
// results, as a table or JSON, read from the blob store when large.
func runResults(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cmd := newBatchCommand("results", "Prints a finished batch's results (also of a failed or canceled one).", stderr)
	cmd.fs.BoolVar(&cmd.o.jsonOut, "json", false, "print JSON instead of a table")
	cmd.fs.StringVar(&cmd.o.outFile, "out", "", "also write the results to this file as JSON lines")
	cmd.fs.BoolVar(&cmd.o.changed, "changed", false, "only the results that changed since the earlier results the batch was given: another body, a page that now fails or fails another way (outcome or HTTP status) or works again, and new URLs")
	cmd.o.storeFlags(cmd.fs, "large results are read from it")
	return cmd.run(args, func(ctx context.Context, b *batch) error {
		if b.running {
			return &exitError{exitState, fmt.Errorf("batch %s is still running: `starter status %s` shows its progress", b.ID(), b.ID())}
		}
		o := cmd.o
		o.finished, o.workflowID = true, b.ID()
		if err := b.withStore(ctx, &o); err != nil {
			return err
		}
		return wait(ctx, b.tc, b.Batch, &o, stdout, stderr)
	})
}

// printOutput prints a batch's output: a table or JSON on w, and the
// results file for --out. Results kept in the blob store are read from
// the starter's store, if it is the workers', as a stream: a batch of a
// million URLs is printed without holding its results.
func printOutput(ctx context.Context, w io.Writer, out workflows.Output, o options) error {
	each := func(fn func(i int, r *workflows.Result) error) error {
		for i := range out.Results {
			if err := fn(i, &out.Results[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	fromFile := out.ResultsFile != "" && out.Results == nil
	if fromFile {
		if err := o.batches.CheckResultsStore(ctx, out); err != nil {
			return o.unreadable(out, err)
		}
		each = func(fn func(i int, r *workflows.Result) error) error {
			return o.eachResult(ctx, out, fn)
		}
	}
	// One pass: --out is written as the results are printed, to a
	// temporary file renamed at the end (so --out may even name the
	// results file being read). The results are printed even when --out
	// cannot be written; its error comes after them.
	var outFile *jsonLinesFile
	var outErr error
	if o.outFile != "" {
		if outFile, outErr = createJSONLines(o.outFile); outErr == nil {
			read := each
			each = func(fn func(i int, r *workflows.Result) error) error {
				return read(func(i int, r *workflows.Result) error {
					if outErr == nil {
						outErr = outFile.write(r)
					}
					return fn(i, r)
				})
			}
		}
	}
	if o.changed {
		// Only what changed: the rows, and the JSON's results.
		if !fromFile {
			var kept []workflows.Result
			for _, r := range out.Results {
				if r.Changed != nil && *r.Changed {
					kept = append(kept, r)
				}
			}
			out.Results = kept
			if kept == nil {
				out.Results = []workflows.Result{}
			}
		} else {
			read := each
			each = func(fn func(i int, r *workflows.Result) error) error {
				return read(func(i int, r *workflows.Result) error {
					if r.Changed == nil || !*r.Changed {
						return nil
					}
					return fn(i, r)
				})
			}
		}
	}
	var sv *saver
	if o.saveDir != "" {
		if sv, err = newSaver(o.saveDir, o.batches); err != nil {
			return &exitError{exitUsage, err}
		}
		read := each
		each = func(fn func(i int, r *workflows.Result) error) error {
			return read(func(i int, r *workflows.Result) error {
				if err := sv.save(ctx, i, r); err != nil {
					return writeError{fmt.Errorf("--save: %w", err)}
				}
				return fn(i, r)
			})
		}
	}
	err = printResults(w, out, o.jsonOut, fromFile, each)
	if sv != nil {
		if cerr := sv.close(); err == nil && cerr != nil {
			err = &exitError{exitInternal, fmt.Errorf("--save: %w", cerr)}
		}
		if err == nil && o.saveLog != nil {
			fmt.Fprintf(o.saveLog, "saved %d kept bodies (%d bytes) to %s; index.jsonl says which URL each holds\n", sv.saved, sv.bytes, o.saveDir)
		}
	}
	if outFile != nil {
		if err != nil || outErr != nil {
			outFile.abort()
		} else {
			outErr = outFile.commit()
		}
	}
	if err != nil {
		return err
	}
	if outErr != nil {
		return &exitError{exitInternal, fmt.Errorf("--out: %w", outErr)}
	}
	return nil
}

// writeError is a failure to write what was read (stdout, --out), as
// opposed to a failure to read the results.
type writeError struct{ error }

func (w writeError) Unwrap() error { return w.error }

// printResults prints out as JSON or as a table with a summary line.
// fromFile: the results come from each (read as they are printed), not
// from out.Results.
func printResults(w io.Writer, out workflows.Output, jsonOut, fromFile bool, each func(func(int, *workflows.Result) error) error) error {
	if jsonOut {
		if !fromFile {
			// The results are at hand: each still goes through them, for
			// --out and --save.
			if err := each(func(int, *workflows.Result) error { return nil }); err != nil {
				return err
			}
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		// The same document, its results array written as it is read:
		// first, as the inline encoding has it, and left out when empty.
		head, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(head, []byte("{\n")) {
			return fmt.Errorf("unexpected encoding of the output: %.40s", head)
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		n := 0
		err = each(func(_ int, r *workflows.Result) error {
			b, err := json.MarshalIndent(r, "    ", "  ")
			if err != nil {
				return err
			}
			if n == 0 {
				bw.WriteString("{\n  \"results\": [\n    ")
			} else {
				bw.WriteString(",\n    ")
			}
			n++
			if _, err := bw.Write(b); err != nil {
				return writeError{err}
			}
			return nil
		})
		if err != nil {
			_ = bw.Flush() // what was read is shown; the error says the rest is missing
			return err
		}
		if n == 0 {
			bw.Write(head)
		} else {
			bw.WriteString("\n  ],")
			bw.Write(head[1:])
		}
		bw.WriteString("\n")
		return bw.Flush()
	}
	return printTable(w, out, each)
}

// summary counts a batch's outcomes: canceled URLs apart from failed ones,
// and, of the failed ones of inline results, those robots.txt disallowed.
func summary(out workflows.Output) string {
	canceled, robots := out.Canceled, 0
	if out.Results != nil {
		canceled = 0
		for _, r := range out.Results {
			switch r.Outcome {
			case workflows.OutcomeCanceled:
				canceled++
			case workflows.OutcomeRobotsDisallowed:
				robots++
			}
		}
	}
	s := fmt.Sprintf("%d ok, %d failed", out.OK, out.Failed-canceled)
	if robots > 0 {
		s += fmt.Sprintf(" (%d disallowed by robots.txt)", robots)
	}
	if canceled > 0 {
		s += fmt.Sprintf(", %d canceled", canceled)
	}
	if out.NotModified != nil && out.Changed != nil {
		s += fmt.Sprintf(" (%d not modified, %d changed)", *out.NotModified, *out.Changed)
	}
	return s
}

// eachResult calls fn on each result of out's results file, in order,
// read through the client as a stream: one is held at a time.
func (o options) eachResult(ctx context.Context, out workflows.Output, fn func(int, *workflows.Result) error) error {
	i := 0
	for r, err := range o.batches.Results(ctx, out) {
		if err != nil {
			return &exitError{exitInternal, err}
		}
		if err := fn(i, &r); err != nil {
			return err
		}
		i++
	}
	return nil
}

// unreadable says why out's results file cannot be read, err
// (CheckResultsStore's), with the exit status that goes with it.
func (o options) unreadable(out workflows.Output, err error) error {
	var other *bfclient.StoreMismatchError
	if !errors.As(err, &other) {
		return &exitError{exitInternal, err}
	}
	return &exitError{exitStore, fmt.Errorf("the batch ran (%d ok, %d failed of %d) but its results (%s) are in the workers' blob store (identity %s), not in this starter's (%s, identity %s): read them with `starter results --blob-dir DIR %s` (or --blob-url), DIR the workers' --blob-dir",
		out.OK, out.Failed, out.Total, out.ResultsFile, other.Workers, o.storeLocation(), other.Mine, orPlaceholder(o.workflowID))}
}

// jsonLinesFile is --out being written: to a temporary file beside it,
// renamed into place by commit (blobstore.CommitFile: durably).
type jsonLinesFile struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	enc  *json.Encoder
}

func createJSONLines(path string) (*jsonLinesFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	return &jsonLinesFile{path: path, f: f, bw: bw, enc: json.NewEncoder(bw)}, nil
}

func (j *jsonLinesFile) write(r *workflows.Result) error { return j.enc.Encode(r) }

func (j *jsonLinesFile) commit() error {
	if err := j.bw.Flush(); err != nil {
		j.abort()
		return err
	}
	if err := j.f.Chmod(0o644); err != nil {
		j.abort()
		return err
	}
	// Synced before and after the rename: after a host crash --out
	// holds every result, or what it held before.
	return blobstore.CommitFile(j.f, j.path)
}

func (j *jsonLinesFile) abort() {
	j.f.Close()
	_ = os.Remove(j.f.Name())
}

// finishedOutput is a closed batch's output, also when it failed or was
// canceled (their errors carry it).
func finishedOutput(ctx context.Context, b *bfclient.Batch) (*workflows.Output, bool) {
	out, err := b.Wait(ctx)
	if err == nil {
		return &out, true
	}
	partial := bfclient.PartialOutput(err)
	return partial, partial != nil
}

// orPlaceholder is id, or WORKFLOW_ID where it is not known.
func orPlaceholder(id string) string {
	if id == "" {
		return "WORKFLOW_ID"
	}
	return id
}
