package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	bfclient "github.com/batchfetch/batchfetch/client"
)

// runCancel runs `starter cancel WORKFLOW_ID`: it asks a running batch to
// stop, and with --wait waits until it has.
func runCancel(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cmd := newBatchCommand("cancel", "Cancels a running batch: fetches in flight stop, finished URLs keep their results.", stderr)
	waitStop := cmd.fs.Bool("wait", false, "wait until the batch has stopped")
	return cmd.run(args, func(ctx context.Context, b *batch) error {
		if !b.running {
			return &exitError{exitState, fmt.Errorf("batch %s is not running (%s): nothing to cancel", b.ID(), b.status)}
		}
		if err := b.Cancel(ctx); err != nil {
			return &exitError{exitInternal, err}
		}
		fmt.Fprintf(stdout, "cancel requested: workflow_id=%s run_id=%s\n", b.ID(), b.RunID())
		if *waitStop {
			_, err := b.Wait(ctx)
			var canceled *bfclient.CanceledError
			if err != nil && !errors.As(err, &canceled) {
				return &exitError{exitFailed, err}
			}
			fmt.Fprintln(stdout, "stopped")
		}
		return nil
	})
}
