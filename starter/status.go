package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/sdk/temporal"
)

// runStatus runs `starter status WORKFLOW_ID`: the state of a batch, its
// progress while it runs, its counts once it has finished.
func runStatus(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cmd := newBatchCommand("status", "Prints a batch's state, and its progress or its final counts.", stderr)
	return cmd.run(args, func(ctx context.Context, b *batch) error {
		fmt.Fprintf(stdout, "workflow_id=%s run_id=%s status=%s\n", b.id, b.run.GetRunID(), b.status)
		if b.running {
			// The query first: a chunk it counts has ended before the
			// describes that count running chunks.
			p, err := queryProgress(ctx, b.c, b.id, b.run.GetRunID())
			if hint := encryptedProgress(err); hint != "" {
				fmt.Fprintln(stderr, hint)
			}
			if err == nil {
				p = withRunning(ctx, b.c, b.id, b.run.GetRunID(), p)
				fmt.Fprintln(stdout, progressLine(p, 0, 0))
				if p.Warning != "" {
					fmt.Fprintln(stdout, "warning: "+p.Warning)
				}
				for _, line := range hostsLines(p.Hosts) {
					fmt.Fprintln(stdout, line)
				}
			}
			return nil
		}
		// A finished batch: its counts, from its result.
		if out, ok := finishedOutput(ctx, b.run); ok {
			fmt.Fprintf(stdout, "%s of %d\n", summary(*out), out.Total)
		} else if err := b.run.Get(ctx, nil); err != nil {
			fmt.Fprintf(stdout, "failure: %v\n", cause(err))
		}
		return nil
	})
}

// cause is an error without the SDK's wrapper around it.
func cause(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return errors.New(plainFailure(errors.New(appErr.Message())))
	}
	return errors.New(plainFailure(err))
}
