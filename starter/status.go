package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/sdk/temporal"

	bfclient "github.com/batchfetch/batchfetch/client"
)

// runStatus runs `starter status WORKFLOW_ID`: the state of a batch, its
// progress while it runs, its counts once it has finished.
func runStatus(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cmd := newBatchCommand("status", "Prints a batch's state, and its progress or its final counts.", stderr)
	return cmd.run(args, func(ctx context.Context, b *batch) error {
		fmt.Fprintf(stdout, "workflow_id=%s run_id=%s status=%s\n", b.ID(), b.RunID(), b.status)
		if b.running {
			printProgress(ctx, b.Batch, stdout, stderr)
			return nil
		}
		// A finished batch: its counts, from its result.
		if out, ok := finishedOutput(ctx, b.Batch); ok {
			fmt.Fprintf(stdout, "%s of %d\n", summary(*out), out.Total)
		} else if _, err := b.Wait(ctx); err != nil {
			fmt.Fprintf(stdout, "failure: %v\n", cause(err))
		}
		return nil
	})
}

// printProgress prints a running batch's progress, its warning and its
// hosts.
func printProgress(ctx context.Context, b *bfclient.Batch, stdout, stderr io.Writer) {
	// The query first: a chunk it counts has ended before the describes
	// that count running chunks.
	p, err := queryProgress(ctx, b)
	if hint := encryptedProgress(err); hint != "" {
		fmt.Fprintln(stderr, hint)
	}
	if err != nil {
		return
	}
	p = withRunning(ctx, b, p)
	fmt.Fprintln(stdout, progressLine(p, 0, 0))
	if p.Warning != "" {
		fmt.Fprintln(stdout, "warning: "+p.Warning)
	}
	for _, line := range hostsLines(p.Hosts) {
		fmt.Fprintln(stdout, line)
	}
}

// cause is what a batch ended with, without the SDK's wrapper around it.
func cause(err error) error {
	var failed *bfclient.BatchFailedError
	var canceled *bfclient.CanceledError
	switch {
	case errors.As(err, &failed):
		err = failed.Err
	case errors.As(err, &canceled):
		err = canceled.Err
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return errors.New(plainFailure(errors.New(appErr.Message())))
	}
	return errors.New(plainFailure(err))
}
