package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/process"
)

// readCounter counts the blobs opened and the bytes read from them.
type readCounter struct {
	blobstore.Store
	mu     sync.Mutex
	opened map[string]int
	read   int64
}

func (c *readCounter) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := c.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opened[key]++
	c.mu.Unlock()
	return &readCounted{ReadCloser: r, c: c}, nil
}

func (c *readCounter) CreateUnnamed(ctx context.Context, dir string) (blobstore.UnnamedWriter, error) {
	return c.Store.(blobstore.Unnamed).CreateUnnamed(ctx, dir)
}

type readCounted struct {
	io.ReadCloser
	c *readCounter
}

func (r *readCounted) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.mu.Lock()
	r.c.read += int64(n)
	r.c.mu.Unlock()
	return n, err
}

// TestStepsShareTheHashsSingleRead: hashing with a CPU step, and keeping
// the body, reads the blob once: the step and the kept copy get the bytes
// the hash reads, and no second pass.
func TestStepsShareTheHashsSingleRead(t *testing.T) {
	dir, _ := blobstore.NewDir(t.TempDir())
	page := "<title>Big</title>" + strings.Repeat("<p>words <a href=\"/next\">next</a></p>\n", 150_000) // about 6 MiB
	w, _ := dir.Create(context.Background(), "batches/r/bodies/0")
	_, _ = io.WriteString(w, page)
	_ = w.Commit()
	crc := crc32.Checksum([]byte(page), castagnoli)
	sum := sha256.Sum256([]byte(page))
	for _, step := range []string{"html", "image", "sha256"} {
		t.Run(step, func(t *testing.T) {
			store := &readCounter{Store: dir, opened: map[string]int{}}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			h := &Hasher{Store: store}
			env.RegisterActivity(h)
			v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Prefix: "batches/r", Chunk: 0, Keep: true, Process: step, ProcessedPrefix: "processed/r",
				Items: []Fetched{{Index: 0, URL: "http://127.0.0.1/big", Blob: "batches/r/bodies/0", Status: 200, Attempts: 1, Size: int64(len(page)), CRC32C: &crc, Meta: Meta{ContentType: "text/html"}}}})
			if err != nil {
				t.Fatal(err)
			}
			var out HashChunkResult
			if err := v.Get(&out); err != nil {
				t.Fatal(err)
			}
			r := out.Results[0]
			if store.opened["batches/r/bodies/0"] != 1 || store.read != int64(len(page)) {
				t.Errorf("the body was opened %d times and %d bytes read, want once and %d", store.opened["batches/r/bodies/0"], store.read, len(page))
			}
			if step != "image" && (r.SHA256 != hex.EncodeToString(sum[:]) || r.BodyKey != KeptBodyKey(r.SHA256)) {
				t.Fatalf("%+v", r)
			}
			switch step {
			case "html":
				var got process.HTMLResult
				if r.Outcome != OutcomeOK || json.Unmarshal(r.Processed, &got) != nil || got.Title != "Big" || len(got.Links) != 1 {
					t.Errorf("html: %+v", r)
				}
			case "image":
				if r.Outcome != OutcomeError || !strings.Contains(r.Error, "not an image") || r.BodyKey != "" {
					t.Errorf("image of a page: %+v", r)
				}
			}
		})
	}
}
