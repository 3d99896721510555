package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// retryPoll is how often the starter describes the batch (and its parts)
// for activities that keep failing: a describe costs the server more
// than the progress query.
const retryPoll = 3 * time.Second

// watchBatch shows, until done closes, the batch's progress and, under
// it, what holds it up: an activity that keeps failing, a server that
// does not answer.
func watchBatch(ctx context.Context, c client.Client, run client.WorkflowRun, o *options, done <-chan struct{}, scr *screen, slots *slotWarning, reach *reachability) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel() // calls under way are not waited for
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchRetries(ctx, newRetryWatch(c, run, o), scr, reach)
	}()
	showProgress(ctx, c, run, scr, slots, reach)
	wg.Wait()
	scr.end()
}

// watchRetries says what the activity retried most often last failed
// with, until ctx ends.
func watchRetries(ctx context.Context, rw *retryWatch, scr *screen, reach *reachability) {
	t := time.NewTicker(retryPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		worst, found, err := rw.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		showReach(scr, reach, reach.answered(began, err))
		switch {
		case err != nil:
			// What was said stands until the batch is described again.
		case found:
			text, key := worst.note()
			scr.setNote(noteRetrying, text, key)
		default:
			scr.setNote(noteRetrying, "", "")
		}
	}
}

// showReach shows whether the server answers; back: it answers again,
// after that long.
func showReach(scr *screen, reach *reachability, back time.Duration) {
	text, key := reach.note(time.Now())
	scr.setNote(noteUnreachable, text, key)
	if back > 0 {
		fmt.Fprint(scr, reach.backLine(back))
	}
}

// showProgress polls the progress query until ctx ends; a warning in it
// is said once (slots).
func showProgress(ctx context.Context, c client.Client, run client.WorkflowRun, scr *screen, slots *slotWarning, reach *reachability) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var began time.Time
	var startDone int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := time.Now()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.QueryWorkflow(qctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// A query no worker answers in time is no word on the server.
		var unavailable *serviceerror.Unavailable
		if !unreachable(err) || errors.As(err, &unavailable) {
			showReach(scr, reach, reach.answered(asked, err))
		}
		if err != nil {
			continue // not started yet, or finished between ticks
		}
		var p workflows.Progress
		if v.Get(&p) != nil {
			continue
		}
		if p.Warning != "" {
			slots.say(p.Warning)
		}
		p.InFlight = slots.inFlight(p.InFlight)
		now := time.Now()
		if began.IsZero() {
			began, startDone = now, p.Done
		}
		scr.setBar(progressLine(p, now.Sub(began), p.Done-startDone))
	}
}

// progressLine renders progress as a bar with counts and the rate since
// waiting began.
func progressLine(p workflows.Progress, elapsed time.Duration, doneSince int) string {
	const width = 24
	filled := 0
	if p.Total > 0 {
		filled = p.Done * width / p.Total
	}
	rate := ""
	if elapsed >= time.Second {
		r := float64(doneSince) / elapsed.Seconds()
		switch {
		case r >= 10:
			rate = fmt.Sprintf(" %.0f URLs/s", r)
		case doneSince > 0:
			rate = fmt.Sprintf(" %.2g URLs/s", r) // never 0 while URLs finish
		}
	}
	inFlight := strconv.Itoa(p.InFlight)
	if p.MaxInFlight > 0 { // batches started before say nothing of it
		inFlight += "/" + strconv.Itoa(p.MaxInFlight)
	}
	return fmt.Sprintf("[%s%s] %d/%d%s  ok %d  failed %d  in flight %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total, rate, p.OK, p.Failed, inFlight)
}
