package activities

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/process"
)

// BenchmarkHashBlob compares hashing a stored blob with hashing the same
// bytes in memory, and hashing with each built-in CPU step fed by the same
// read (the body is HTML-like text, which the html step parses whole):
//
//	BENCH_DIR=/dev/shm go test -run XXX -bench HashBlob -benchtime 5x ./activities
func BenchmarkHashBlob(b *testing.B) {
	const size = 256 << 20
	body := make([]byte, size)
	para := []byte("<p>some words of a paragraph and <a href=\"/a/link\">a link</a></p>\n")
	for i := range body {
		body[i] = para[i%len(para)]
	}
	dir, err := os.MkdirTemp(os.Getenv("BENCH_DIR"), "hashblob-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, _ := blobstore.NewDir(dir)
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b", "x"), body, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("raw", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			h := sha256.New()
			h.Write(body)
			h.Sum(nil)
		}
	})
	b.Run("blob", func(b *testing.B) {
		h := &Hasher{Store: store}
		b.SetBytes(size)
		for range b.N {
			if _, err := h.hashBlob(context.Background(), "b/x", nil, 0, nil, func(hashState) {}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range []string{"html", "image"} {
		b.Run("blob+"+name, func(b *testing.B) {
			h := &Hasher{Store: store}
			p, err := h.processor(name)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for range b.N {
				side, err := h.startSideways(context.Background(), false, name, p, process.Info{URL: "http://127.0.0.1/x", ContentType: "text/html", Size: size})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.hashBlob(context.Background(), "b/x", nil, 0, nil, func(hashState) {}, side); err != nil {
					b.Fatal(err)
				}
				side.finish(true)
			}
		})
	}
}
