package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

// prevBuffer bounds the earlier results joining holds before it writes
// them out as a part.
const prevBuffer = 16 << 20

// maxPreviousLine bounds one line of a previous_file.
const maxPreviousLine = 1 << 20

// badPrevious is an earlier result that is not one: where names it
// (previous[3], previous_file line 17).
type badPrevious struct {
	where string
	err   error
}

func (e *badPrevious) Error() string { return e.where + ": " + e.err.Error() }

// joinPrevious reads the earlier results and writes, for each chunk, the
// ones of its URLs (matched by URL: where has the positions of a URL,
// perhaps of another URL of the same hash, which readPrev tells apart), in
// parts of at most prevBuffer. A URL given twice in the earlier results
// takes the later. It returns how many parts it wrote.
//
// A bad entry is InvalidInput naming it. With PreviousOptional (the
// results a chain's last run left), a file that cannot be read as results
// (a torn last line after a crash) is no earlier results instead: it
// returns no parts and why, and the batch fetches every URL in full.
func (f *Fetcher) joinPrevious(ctx context.Context, req StageRequest, where func(string) []int32) (parts int, unread string, err error) {
	pw := &prevWriter{f: f, ctx: ctx, prefix: req.Prefix, chunkSize: req.ChunkSize, where: where, buf: map[int][]byte{}}
	if req.PreviousFile == "" {
		err = eachInline(req.Previous, pw.add)
	} else {
		err = f.eachInFile(ctx, req.PreviousFile, req.PreviousOptional, pw.add)
	}
	if err == nil {
		err = pw.flush()
	}
	var bad *badPrevious
	switch {
	case err == nil:
		return pw.parts, "", nil
	case errors.As(err, &bad) && req.PreviousOptional:
		unread = fmt.Sprintf("the earlier results %q cannot be read (%v): compared with none, every URL fetched in full", req.PreviousFile, err)
		activity.GetLogger(ctx).Warn("the earlier results cannot be read: comparing with none, every URL is fetched in full",
			"previous_file", req.PreviousFile, "error", err.Error())
		if err := f.Store.DeletePrefix(ctx, req.Prefix+"/prev"); err != nil {
			return 0, "", err
		}
		return 0, unread, nil
	case errors.As(err, &bad):
		return 0, "", temporal.NewNonRetryableApplicationError(bad.Error(), InvalidInputType, nil)
	default:
		return 0, "", err
	}
}

// prevWriter buffers the earlier results of each chunk and writes them out
// a part at a time.
type prevWriter struct {
	f         *Fetcher
	ctx       context.Context
	prefix    string
	chunkSize int
	where     func(string) []int32
	buf       map[int][]byte
	held      int
	parts     int
}

// add buffers an earlier result for each position of its URL.
func (p *prevWriter) add(r Result) error {
	e := EarlierOf(r)
	if e == nil {
		return nil
	}
	for _, i := range p.where(r.URL) {
		line, err := json.Marshal(IndexedPrev{Index: int(i), URL: r.URL, Prev: *e.Prev, Processed: e.Processed, ProcessedKey: e.ProcessedKey})
		if err != nil {
			return err
		}
		c := int(i) / p.chunkSize
		p.buf[c] = append(append(p.buf[c], line...), '\n')
		p.held += len(line) + 1
	}
	if p.held > prevBuffer {
		return p.flush()
	}
	return nil
}

// flush writes what is buffered as the next part.
func (p *prevWriter) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	for chunk, b := range p.buf {
		w, err := p.f.Store.Create(p.ctx, PrevKey(p.prefix, chunk, p.parts))
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			_ = w.Abort()
			return err
		}
		if err := w.Commit(); err != nil {
			return err
		}
	}
	clear(p.buf)
	p.held = 0
	p.parts++
	activity.RecordHeartbeat(p.ctx, p.parts)
	return nil
}

// eachInline calls add on each earlier result given inline.
func eachInline(previous []Result, add func(Result) error) error {
	for i, r := range previous {
		if err := CheckPrevious(r); err != nil {
			return &badPrevious{where: fmt.Sprintf("previous[%d]", i), err: err}
		}
		if err := add(r); err != nil {
			return err
		}
	}
	return nil
}

// eachInFile calls add on each earlier result of a results file (JSON
// lines). A file not in the store is no earlier results when optional.
func (f *Fetcher) eachInFile(ctx context.Context, key string, optional bool, add func(Result) error) error {
	rc, err := f.Store.Open(ctx, key)
	if errors.Is(err, blobstore.ErrNotFound) {
		if optional {
			return nil
		}
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous_file: %q is not in the blob store%s", key, f.describeStore()), InvalidInputType, nil)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	for line := 1; ; line++ {
		where := fmt.Sprintf("previous_file line %d", line)
		b, err := readLine(br, maxPreviousLine)
		var tooLong *lineTooLong
		switch {
		case err == io.EOF:
			return nil
		case errors.As(err, &tooLong):
			return &badPrevious{where: where, err: err}
		case err != nil:
			return fmt.Errorf("reading previous_file %q at line %d: %w", key, line, err)
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return &badPrevious{where: where, err: fmt.Errorf("not a result: %v", err)}
		}
		if err := CheckPrevious(r); err != nil {
			return &badPrevious{where: where, err: err}
		}
		if err := add(r); err != nil {
			return err
		}
		if line%10000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// lineTooLong is a line over readLine's bound.
type lineTooLong struct{ max int }

func (e *lineTooLong) Error() string { return fmt.Sprintf("longer than %d bytes", e.max) }

// readLine reads one line of at most max bytes, without its newline.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadSlice('\n')
		line = append(line, b...)
		if len(line) > max {
			return nil, &lineTooLong{max: max}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}

// CheckPrevious says what is wrong with an earlier result given as
// previous, or nil: it needs a URL, and what it says must be what a
// result holds. Its body_key, if any, is where a body of its sha256 is
// kept; its etag, last_modified, content_type and date are what a
// response's headers may put in a result (keepable), so that the earlier
// results a chunk carries stay as small as a live response's.
func CheckPrevious(r Result) error {
	switch {
	case r.URL == "":
		return errors.New("no url")
	case len(r.URL) > MaxURLLength:
		return fmt.Errorf("url longer than %d bytes", MaxURLLength)
	case r.SHA256 != "" && !isHex64(r.SHA256):
		return fmt.Errorf("sha256 of %d characters is not 64 lower-case hexadecimal digits", len(r.SHA256))
	case r.Size < 0:
		return fmt.Errorf("size %d is negative", r.Size)
	case r.BodyKey != "" && r.SHA256 == "":
		return fmt.Errorf("body_key %s without a sha256: a kept body is named by its sha256", clipQuote(r.BodyKey))
	case r.BodyKey != "" && r.BodyKey != KeptBodyKey(r.SHA256):
		return fmt.Errorf("body_key %s is not where a body of its sha256 is kept (%s)", clipQuote(r.BodyKey), KeptBodyKey(r.SHA256))
	}
	for _, h := range []struct {
		name, v string
		max     int
	}{{"etag", r.ETag, maxETag}, {"last_modified", r.LastModified, maxDate}, {"content_type", r.ContentType, maxContentType}, {"date", r.Date, maxDate}} {
		if len(h.v) > h.max {
			return fmt.Errorf("%s of %d bytes is longer than a result's (at most %d)", h.name, len(h.v), h.max)
		}
		if !keepable(h.v, h.max) {
			return fmt.Errorf("%s %s has bytes a result's does not (printable ASCII but <, > and &)", h.name, clipQuote(h.v))
		}
	}
	return nil
}

// clipQuote quotes s for a message, cut to its first 80 bytes.
func clipQuote(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q…", s[:80])
	}
	return fmt.Sprintf("%q", s)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
