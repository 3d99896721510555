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
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// retryPoll is how often the starter describes the batch (and up to
// partsPerPoll of its parts): for activities that keep failing, and for
// the URLs its running chunks have done, which the bar counts about once
// a second, as the progress query moves. A describe reads the server's
// record of the run; it asks no worker.
const retryPoll = time.Second

// describeBudget is what the describes may read per second: a batch whose
// running chunks carry large checkpoints (a fetch's lists its done URLs)
// is described less often, down to once every maxRetryPoll.
const describeBudget = 1 << 20

const maxRetryPoll = 30 * time.Second

// pollWait is the wait before the next describes, after some that read
// read bytes.
func pollWait(read int) time.Duration {
	return min(maxRetryPoll, max(retryPoll, time.Duration(read)*time.Second/describeBudget))
}

// watchBatch shows, until done closes, the batch's progress and, under
// it, what holds it up: an activity that keeps failing, a server that
// does not answer.
func watchBatch(ctx context.Context, b *bfclient.Batch, o *options, done <-chan struct{}, scr *screen, slots *slotWarning, reach *reachability, bar *barState) {
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
		watchRetries(ctx, newRetryWatch(b, o), scr, reach, bar)
	}()
	showProgress(ctx, b, scr, slots, reach, bar)
	wg.Wait()
	if line := bar.finalLine(); line != "" {
		scr.setBar(line)
	}
	scr.end()
}

// watchRetries says what the activity retried most often last failed
// with, and offers bar the URLs running chunks have done, until ctx ends.
func watchRetries(ctx context.Context, rw *retryWatch, scr *screen, reach *reachability, bar *barState) {
	t := time.NewTimer(retryPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A query answered before the describes: a chunk it counts
		// had ended, and they show it no more.
		asked, ok := bar.answer()
		began := time.Now()
		worst, found, err := rw.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Reset(pollWait(rw.read))
		if ok && err == nil {
			bar.offer(min(asked.Total, asked.Done+rw.fetched))
		}
		if err == nil {
			bar.sawHosts(rw.counts.hostsNow())
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
func showProgress(ctx context.Context, b *bfclient.Batch, scr *screen, slots *slotWarning, reach *reachability, bar *barState) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	hinted := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := time.Now()
		p, err := queryProgress(ctx, b)
		if ctx.Err() != nil {
			return
		}
		// A query no worker answers in time is no word on the server.
		var unavailable *serviceerror.Unavailable
		if !unreachable(err) || errors.As(err, &unavailable) {
			showReach(scr, reach, reach.answered(asked, err))
		}
		if hint := encryptedProgress(err); hint != "" && !hinted {
			hinted = true // once: it stays so
			fmt.Fprintf(scr, "\nstarter: %s\n", hint)
		}
		if err != nil {
			continue // not started yet, or finished between ticks
		}
		if p.Warning != "" {
			slots.say(p.Warning)
		}
		p.InFlight = slots.inFlight(p.InFlight)
		bar.answered(p)
		p.Hosts = withLiveHosts(p.Hosts, bar.liveHosts())
		p.Done = min(p.Total, bar.offer(p.Done))
		scr.setBar(bar.line(p, time.Now()))
	}
}

// encryptedProgress says, when err is that of a progress answer the
// starter cannot read (the workers encrypt their payloads and
// BATCHFETCH_CODEC_KEYS is not set here), what to do; "" otherwise.
func encryptedProgress(err error) string {
	if !errors.Is(err, converter.ErrEncodingIsNotSupported) {
		return ""
	}
	return "the batch's progress cannot be read: its workers encrypt what they send; set BATCHFETCH_CODEC_KEYS as the workers have it"
}

// queryProgress asks the batch's progress query, for 5s at the most.
func queryProgress(ctx context.Context, b *bfclient.Batch) (workflows.Progress, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return b.Progress(ctx)
}

// barState is what the bar says: the most URLs seen done (the progress
// query's count, or one with the URLs running chunks had done), and since
// when the starter waits, for the rate.
type barState struct {
	mu        sync.Mutex
	done      int
	began     time.Time
	startDone int
	asked     *workflows.Progress   // the progress query's last answer
	last      *workflows.Progress   // the last bar drawn
	final     *workflows.Progress   // the batch's counts once it has ended
	hosts     []activities.HostView // what running chunks said of their hosts
}

// answered notes the progress query's answer p.
func (b *barState) answered(p workflows.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = &p
}

// answer is the progress query's last answer, if one came.
func (b *barState) answer() (p workflows.Progress, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.asked == nil {
		return p, false
	}
	return *b.asked, true
}

// offer notes that n URLs are done and returns the most seen: the bar
// never goes back.
func (b *barState) offer(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = max(b.done, n)
	return b.done
}

// line is the bar for p at now.
func (b *barState) line(p workflows.Progress, now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.began.IsZero() {
		b.began, b.startDone = now, p.Done
	}
	b.last = &p
	return progressLine(p, now.Sub(b.began), p.Done-b.startDone)
}

// finish notes the counts of the batch, which has ended with out.
func (b *barState) finish(out workflows.Output) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.final = &workflows.Progress{Total: out.Total, Done: out.Total, OK: out.OK, Failed: out.Failed}
}

// finalLine is the bar of the batch's counts once it has ended, when a
// bar was drawn while it ran ("" otherwise).
func (b *barState) finalLine() string {
	b.mu.Lock()
	final, last := b.final, b.last
	b.mu.Unlock()
	if final == nil || last == nil {
		return ""
	}
	p := *final
	p.MaxInFlight = last.MaxInFlight
	return b.line(p, time.Now())
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
	return fmt.Sprintf("[%s%s] %d/%d%s  ok %d  failed %d  in flight %s%s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total, rate, p.OK, p.Failed, inFlight, waitNote(p.Hosts))
}
