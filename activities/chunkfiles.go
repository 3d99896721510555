package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

func (f *Fetcher) readURLs(ctx context.Context, key string, first int) ([]URLTask, error) {
	return readURLs(ctx, f.Store, key, first)
}

// readPrev gives tasks, a staged chunk's URLs, what the earlier results
// staging joined to them said (parts files of IndexedPrev).
func readPrev(ctx context.Context, store blobstore.Store, prefix string, chunk, parts int, tasks []URLTask) error {
	if len(tasks) == 0 {
		return nil
	}
	first := tasks[0].Index
	return eachPrev(ctx, store, prefix, chunk, parts, func(p IndexedPrev) {
		if i := p.Index - first; i >= 0 && i < len(tasks) && tasks[i].URL == p.URL && p.Prev.Replaces(tasks[i].Prev) {
			prev := p.Prev
			tasks[i].Prev = &prev
		}
	})
}

// placed is a URL at its index in a batch.
type placed struct {
	index int
	url   string
}

// readEarlier is what the earlier results staging joined to a staged
// chunk's URLs said of each (staging may have joined a result of another
// URL to an index: only the URL's own counts).
func readEarlier(ctx context.Context, store blobstore.Store, prefix string, chunk, parts int) (map[placed]*Earlier, error) {
	earlier := map[placed]*Earlier{}
	err := eachPrev(ctx, store, prefix, chunk, parts, func(p IndexedPrev) {
		at := placed{p.Index, p.URL}
		if old := earlier[at]; old == nil || p.Prev.Replaces(old.Prev) {
			prev := p.Prev
			earlier[at] = &Earlier{Prev: &prev, Processed: p.Processed, ProcessedKey: p.ProcessedKey}
		}
	})
	return earlier, err
}

// eachPrev calls fn on each earlier result joined to a staged chunk, in
// the order staging read them.
func eachPrev(ctx context.Context, store blobstore.Store, prefix string, chunk, parts int, fn func(IndexedPrev)) error {
	for n := range parts {
		r, err := store.Open(ctx, PrevKey(prefix, chunk, n))
		if errors.Is(err, blobstore.ErrNotFound) {
			continue // no earlier result for this chunk in that part
		}
		if err != nil {
			return fmt.Errorf("reading the chunk's earlier results: %w", err)
		}
		dec := json.NewDecoder(bufio.NewReader(r))
		for {
			var p IndexedPrev
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				r.Close()
				return fmt.Errorf("reading the chunk's earlier results: %w", err)
			}
			fn(p)
		}
		r.Close()
	}
	return nil
}

// chunkLine is a line of a staged chunk's file for a URL with a request
// of its own; the others are the URL alone.
type chunkLine struct {
	URL string   `json:"u"`
	R   *Request `json:"r"`
}

// readURLs reads a staged chunk's URLs, numbered from first.
func readURLs(ctx context.Context, store blobstore.Store, key string, first int) ([]URLTask, error) {
	r, err := store.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading the chunk's URLs: %w", err)
	}
	defer r.Close()
	var tasks []URLTask
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxEntryLine)
	for sc.Scan() {
		t := URLTask{Index: first + len(tasks), URL: sc.Text()}
		if strings.HasPrefix(t.URL, "{") {
			// A URL with a request of its own (chunkLine).
			var l chunkLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return nil, fmt.Errorf("reading the chunk's URLs: line %d: %w", len(tasks)+1, err)
			}
			t.URL, t.R = l.URL, l.R
		}
		tasks = append(tasks, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the chunk's URLs: %w", err)
	}
	return tasks, nil
}

// RemoveBlobs deletes everything under prefix: a batch's files when it ends.
// It heartbeats while it works: a large batch's files take minutes to
// delete on some disks, longer than the heartbeat timeout.
func (f *Fetcher) RemoveBlobs(ctx context.Context, prefix string) error {
	stop := heartbeat(ctx, f.heartbeatEvery(), func() any { return nil })
	defer stop()
	if err := f.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("removing blobs under %s: %w", prefix, err)
	}
	return nil
}

// RemoveInput deletes one input file a batch owned (its urls_file or
// previous_file): exactly that blob, never a directory or a prefix, so a
// key that names one (urls_file "results") removes nothing.
func (f *Fetcher) RemoveInput(ctx context.Context, key string) error {
	r, ok := f.Store.(blobstore.Remover)
	if !ok {
		return temporal.NewNonRetryableApplicationError("this blob store cannot remove one blob", "Unsupported", nil)
	}
	err := r.Remove(ctx, key)
	if errors.Is(err, blobstore.ErrNotOneBlob) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "NotOneBlob", nil)
	}
	return err
}
