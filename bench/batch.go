package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// target is where a batch runs: its task queues and the blob store that
// holds its URL list and its results (the one its workers use).
type target struct {
	queue, cpuQueue string
	store           blobstore.Store
}

func (w *procWorker) target() target {
	return target{queue: w.queue, cpuQueue: w.cpuQueue, store: w.store}
}

// outcome is what a batch did, as its results tell.
type outcome struct {
	wall       time.Duration
	ok, failed int
	errs       errorCounts
	results    []workflows.Result // with keep
	run        client.WorkflowRun
}

// runBatch runs urls as one batch on t, max_in_flight inFlight, and waits
// for it at most timeout. An error is a batch that did not end with
// results: refused, failed, or still running at the timeout (then
// terminated; the error says how far it got). wall is set in every case.
// keep keeps every result.
func runBatch(st *stack, t target, urls []string, inFlight int, timeout time.Duration, keep bool) (outcome, error) {
	return runInput(st, t, workflows.Input{MaxInFlight: inFlight}, urls, timeout, keep)
}

// runInput is runBatch with the batch's other input fields given in in
// (its URLs and CPU task queue are set here).
func runInput(st *stack, t target, in workflows.Input, urls []string, timeout time.Duration, keep bool) (outcome, error) {
	ctx := context.Background()
	in.CPUTaskQueue = t.cpuQueue
	if len(urls) > workflows.InlineLimit {
		key, err := uploadURLs(ctx, t.store, urls)
		if err != nil {
			return outcome{}, fmt.Errorf("writing the URL list to the blob store: %w", err)
		}
		defer t.store.DeletePrefix(ctx, key) //nolint:errcheck
		in.URLsFile = key
	} else {
		in.URLs = urls
	}
	start := time.Now()
	run, err := st.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: t.queue}, workflows.WorkflowName, in)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{run: run}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out workflows.Output
	err = run.Get(waitCtx, &out)
	o.wall = time.Since(start)
	if err != nil {
		if waitCtx.Err() == nil {
			return o, fmt.Errorf("after %v: %w", o.wall.Round(time.Millisecond), err)
		}
		var p workflows.Progress
		if v, qerr := st.client.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery); qerr == nil {
			_ = v.Get(&p)
		}
		_ = st.client.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "bench: over its time limit")
		return o, fmt.Errorf("still running after %v (done %d of %d, %d ok, %d failed, %d in flight): terminated", timeout, p.Done, p.Total, p.OK, p.Failed, p.InFlight)
	}
	o.ok, o.failed = out.OK, out.Failed
	err = eachResult(ctx, t.store, out, func(r workflows.Result) {
		if r.Outcome != workflows.OutcomeOK {
			o.errs.add(r.Outcome + ": " + r.Error)
		}
		if keep {
			o.results = append(o.results, r)
		}
	})
	return o, err
}

// uploadURLs writes a URL list to the store under a key of its own.
func uploadURLs(ctx context.Context, store blobstore.Store, urls []string) (string, error) {
	key := fmt.Sprintf("inputs/bench-%d.txt", time.Now().UnixNano())
	w, err := store.Create(ctx, key)
	if err != nil {
		return "", err
	}
	for _, u := range urls {
		fmt.Fprintln(w, u)
	}
	return key, w.Commit()
}

// eachResult calls fn with each result of out, inline or in its results
// file (removed afterwards).
func eachResult(ctx context.Context, store blobstore.Store, out workflows.Output, fn func(workflows.Result)) error {
	for _, r := range out.Results {
		fn(r)
	}
	if out.ResultsFile == "" {
		return nil
	}
	defer store.DeletePrefix(ctx, out.ResultsFile) //nolint:errcheck
	r, err := store.Open(ctx, out.ResultsFile)
	if err != nil {
		return fmt.Errorf("reading the results: %w", err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var res workflows.Result
		if err := dec.Decode(&res); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the results file %s: %w", out.ResultsFile, err)
		}
		fn(res)
	}
}

// errorCounts counts errors by their shape: the same error for another
// URL, file or attempt (URLs, paths and numbers differ) counts as one,
// written with … where they were.
type errorCounts struct {
	order []string
	n     map[string]int
}

var (
	urlsAndPaths = regexp.MustCompile(`https?://[^\s"]+|/[^\s:"]+`)
	numbers      = regexp.MustCompile(`[0-9]+`)
)

func (e *errorCounts) add(msg string) {
	if e.n == nil {
		e.n = map[string]int{}
	}
	shape := numbers.ReplaceAllString(urlsAndPaths.ReplaceAllString(msg, "…"), "N")
	if e.n[shape] == 0 {
		e.order = append(e.order, shape)
	}
	e.n[shape]++
}

// String lists the first few distinct errors, each with its count.
func (e errorCounts) String() string {
	if len(e.order) == 0 {
		return "none"
	}
	var parts []string
	for i, shape := range e.order {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d other kinds", len(e.order)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d x %q", e.n[shape], shape))
	}
	return strings.Join(parts, "; ")
}
