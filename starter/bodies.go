package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// saver writes the kept bodies of a batch's results to a directory: each
// body as a file named by its URL's position in the input (from 1, zero
// padded), and index.jsonl saying which URL each file holds. Every body
// is checked against its result's sha256 as it is copied.
type saver struct {
	dir     string
	batches *bfclient.Client // reads the bodies, checked
	index   *os.File
	enc     *json.Encoder
	saved   int
	bytes   int64
}

// savedBody is a line of index.jsonl.
type savedBody struct {
	Index   int    `json:"index"` // position in the input, from 1
	File    string `json:"file"`
	URL     string `json:"url"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	BodyKey string `json:"body_key"`
}

func newSaver(dir string, batches *bfclient.Client) (*saver, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--save: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "index.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("--save: %w", err)
	}
	return &saver{dir: dir, batches: batches, index: f, enc: json.NewEncoder(f)}, nil
}

// save copies the kept body of result i, if it has one.
func (s *saver) save(ctx context.Context, i int, r *workflows.Result) error {
	src, err := s.batches.Body(ctx, *r)
	if errors.Is(err, bfclient.ErrNoBody) {
		return nil
	} else if err != nil {
		return err
	}
	defer src.Close()
	name := fmt.Sprintf("%07d", i+1)
	tmp, err := os.CreateTemp(s.dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	defer tmp.Close()
	n, err := io.Copy(tmp, src) // checked against the result as it is read
	if err != nil {
		return fmt.Errorf("%w: not saved", err)
	}
	if err := blobstore.CommitFile(tmp, filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("saving the body of %s: %w", r.URL, err)
	}
	s.saved++
	s.bytes += n
	return s.enc.Encode(savedBody{Index: i + 1, File: name, URL: r.URL, SHA256: r.SHA256, Size: r.Size, BodyKey: r.BodyKey})
}

func (s *saver) close() error { return s.index.Close() }

// runBodies runs `starter bodies WORKFLOW_ID --save DIR`.
func runBodies(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cmd := newBatchCommand("bodies", "Saves the bodies a finished batch kept (\"keep_bodies\": true) to a directory: one file per URL, named by its position in the input, and index.jsonl saying which URL each holds.", stderr)
	var dir string
	cmd.fs.StringVar(&dir, "save", "", "directory to write the bodies to (required)")
	cmd.o.storeFlags(cmd.fs, "the kept bodies and large results are read from it")
	return cmd.run(args, func(ctx context.Context, b *batch) error {
		if dir == "" {
			return &exitError{exitUsage, errors.New("bodies: --save DIR is required")}
		}
		if b.running {
			return &exitError{exitState, fmt.Errorf("batch %s is still running: `starter status %s` shows its progress", b.ID(), b.ID())}
		}
		o := cmd.o
		if err := b.withStore(ctx, &o); err != nil {
			return err
		}
		out, ok := finishedOutput(ctx, b.Batch)
		if !ok {
			return &exitError{exitState, fmt.Errorf("batch %s has no results (it failed before fetching)", b.ID())}
		}
		o.jsonOut, o.saveDir, o.saveLog = true, dir, stdout
		if err := printOutput(ctx, io.Discard, *out, o); err != nil {
			return err
		}
		return nil
	})
}

// runGC runs `starter gc --older-than 720h`: removes kept bodies (and the
// unnamed leftovers of writes a crash cut off) last used longer ago than
// the given age from a blob directory.
func runGC(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o options
	flags := flag.NewFlagSet("starter gc", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: starter gc --older-than 720h [--blob-dir DIR]\n\nRemoves kept bodies (bodies/sha256/) last used more than --older-than ago from a blob directory,\nand the scratch (batches/RUN_ID/) of batches that nothing wrote to for as long (a week at least):\na batch removes its own when it ends, one terminated does not.\nAlso the robots.txt records (robots/) the fetch workers share, not written for as long.\nA body is used when a batch keeps it, and when a not_modified result carries it forward. For an object store, use its lifecycle rules (see README).\n\nflags:\n")
		flags.PrintDefaults()
	}
	older := flags.Duration("older-than", 0, "remove kept bodies last used more than this long ago (required, e.g. 720h)")
	dry := flags.Bool("dry-run", false, "list what would be removed, remove nothing")
	o.storeFlags(flags, "its bodies/sha256/ is cleaned")
	positional, done, err := parseFlags(flags, args)
	if done || err != nil {
		return err
	}
	if len(positional) > 0 {
		return &exitError{exitUsage, fmt.Errorf("gc takes no arguments, got %q", positional)}
	}
	if *older <= 0 {
		return &exitError{exitUsage, errors.New("gc: --older-than must be positive (e.g. 720h for 30 days)")}
	}
	if o.blobURL != "" {
		return &exitError{exitUsage, errors.New("gc: an object store expires kept bodies with a lifecycle rule on the bodies/sha256/ prefix (see README); gc cleans a --blob-dir")}
	}
	g := &gc{d: &blobstore.Dir{Root: o.blobDir}, cutoff: time.Now().Add(-*older), dry: *dry, list: stdout}
	root := filepath.Join(o.blobDir, "bodies", "sha256")
	if err := g.walk(root); err != nil {
		return &exitError{exitInternal, fmt.Errorf("gc: %w", err)}
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	fmt.Fprintf(stderr, "%s %d kept bodies (%d bytes) last used before %s from %s\n", verb, g.n, g.size, g.cutoff.UTC().Format(time.RFC3339), root)
	if err := sweepBatches(o.blobDir, g.cutoff, *dry, stdout, stderr); err != nil {
		return &exitError{exitInternal, fmt.Errorf("gc: %w", err)}
	}
	if err := sweepRobots(o.blobDir, g.cutoff, *dry, stdout, stderr); err != nil {
		return &exitError{exitInternal, fmt.Errorf("gc: %w", err)}
	}
	return nil
}

// gc is a pass of `starter gc` over a blob directory's kept bodies.
type gc struct {
	d      *blobstore.Dir
	cutoff time.Time
	dry    bool
	list   io.Writer // --dry-run lists here
	n      int
	size   int64
}

func (g *gc) walk(root string) error {
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // no kept bodies, or removed meanwhile
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(g.d.Root, path)
		if err != nil {
			return err
		}
		return g.entry(path, filepath.ToSlash(rel), e)
	})
}

// entry decides on the file at path, the blob under key.
func (g *gc) entry(path, key string, e fs.DirEntry) error {
	switch name := e.Name(); {
	case strings.HasPrefix(name, blobstore.HiddenPrefix):
		// A body an earlier gc was deciding on when it was stopped:
		// back in place, it ages like any other.
		if g.dry {
			return nil
		}
		return g.d.Unhide(key)
	case strings.HasPrefix(name, blobstore.UnnamedPrefix):
		// A write a crash cut off: nothing names it. A write still
		// going on keeps its time fresh; one idle for an hour is dead.
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(time.Now().Add(-time.Hour)) {
			return nil
		}
		if g.dry {
			fmt.Fprintln(g.list, path)
		} else if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		g.n++
		g.size += info.Size()
		return nil
	}
	if g.dry {
		info, err := e.Info()
		if err == nil && info.ModTime().Before(g.cutoff) {
			fmt.Fprintln(g.list, path)
			g.n++
			g.size += info.Size()
		}
		return nil
	}
	removed, size, err := g.d.RemoveUnused(key, g.cutoff)
	if removed {
		g.n++
		g.size += size
	}
	return err
}
