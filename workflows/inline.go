package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/process"
)

// ResultsInline tells whether a batch started now with in returns its
// results inline (Output.Results), not as a file in the blob store
// (Output.ResultsFile). False for input that does not validate.
func ResultsInline(in Input) bool {
	s, err := in.Validate()
	return err == nil && s.runsInline(true)
}

// runsInline tells whether the batch runs in this workflow, one activity
// per URL, with its results inline; strict: see strictOutcomes.
func (s Settings) runsInline(strict bool) bool {
	return s.URLsFile == "" && s.PreviousFile == "" && s.Incremental == "" && len(s.URLs) <= InlineLimit && requestsFit(s.PerURL) && (!strict || inlineFits(s.URLs, s.Process != ""))
}

// inlineFits tells whether a batch's results surely fit in the
// workflow's own output: its URLs as the output encodes them, plus for
// each result its other fields and an error of up to
// activities.MaxErrorText, take at most InlineOutputBytes (Temporal
// refuses payloads over 2 MB). Only batches of long URLs are staged for it.
func inlineFits(urls []string, processed bool) bool {
	per := resultFields + activities.MaxErrorText
	if processed {
		per += process.MaxInline + 128 // and its key's name
	}
	n := 2 + len(urls)*per
	for _, u := range urls {
		n += 3 + activities.JSONLen(u) // with its quotes and comma
	}
	return n <= InlineOutputBytes
}

// resultFields bounds the encoding of a result's fields but its URL and
// error.
const resultFields = 256

// runInline runs a small batch in this workflow, with results inline.
func runInline(ctx workflow.Context, s Settings, prefix string, strict bool, progress *Progress, attrs *countAttrs) (*Output, error) {
	n := len(s.URLs)
	earlier := earlierByURL(s.Previous)
	size := (n + maxChunksInline - 1) / maxChunksInline
	var chunks []chunk
	for first, c := 0, 0; first < n; first, c = first+size, c+1 {
		ch := chunk{index: c, first: first, base: first}
		for i := first; i < min(first+size, n); i++ {
			ch.urls = append(ch.urls, activities.URLTask{Index: i, URL: s.URLs[i], Prev: prevOf(earlier[s.URLs[i]]), R: s.perURL(i)})
		}
		ch.n = len(ch.urls)
		chunks = append(chunks, ch)
	}
	e := newEngine(ctx, s, prefix, size, n, chunksInFlight, false, strict, progress)
	// A URL with an activity of its own retries with Temporal's policy.
	// A batch with a per-host rule (none started before it existed) runs
	// even one-URL chunks through FetchChunk, which keeps the rule.
	e.native = size == 1 && strict && s.PerHost == nil && nativeRetries(ctx)
	e.results = make([]Result, n)
	e.attrs = attrs
	e.run(ctx, chunks)
	for i := range e.results {
		if e.results[i].Outcome == "" {
			e.results[i] = Result{URL: s.URLs[i], Outcome: OutcomeCanceled, Error: "canceled: batch stopped"}
		}
	}
	if s.Compare {
		for i := range e.results {
			activities.CompareWith(&e.results[i], earlier[e.results[i].URL], s.Process != "")
		}
	}
	out := &Output{Results: e.results, OK: progress.OK, Failed: n - progress.OK, Total: n, Failures: sampleFailures(e.results)}
	var notModified, changed int
	for i := range out.Results {
		switch r := out.Results[i]; {
		case r.Outcome == OutcomeCanceled:
			out.Canceled++
		case r.Outcome == OutcomeNotModified:
			notModified++
		case r.Changed != nil && *r.Changed:
			changed++
		}
	}
	if s.Compare {
		out.NotModified, out.Changed = &notModified, &changed
	}
	progress.Done, progress.Failed, progress.InFlight = n, out.Failed, 0
	return finish(ctx, e.failure, out)
}

// earlierByURL is what the earlier results say of each URL: a URL given
// twice takes the later entry, but for a failure after a body (the later
// entry with a sha256 stands).
func earlierByURL(previous []Result) map[string]*activities.Earlier {
	by := map[string]*activities.Earlier{}
	for _, r := range previous {
		if e := activities.EarlierOf(r); e != nil && e.Prev.Replaces(prevOf(by[r.URL])) {
			by[r.URL] = e
		}
	}
	return by
}

// prevOf is the Prev of e, nil for none.
func prevOf(e *activities.Earlier) *activities.Prev {
	if e == nil {
		return nil
	}
	return e.Prev
}
