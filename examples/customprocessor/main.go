// Command customprocessor is a CPU worker with a CPU step of its own:
// "wordcount", which counts the lines and words of each body, beside the
// built-in sha256, html and image.
//
// Run it instead of (or beside the same version of) `worker --role cpu`,
// on the same blob store as the fetch workers:
//
//	TEMPORAL_ADDRESS=127.0.0.1:7233 go run ./examples/customprocessor --blob-dir ./blobs
//
// and start a batch that asks for it:
//
//	go run ./starter start --process wordcount https://example.com/
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/cpuworker"
	"github.com/batchfetch/batchfetch/process"
)

// Counts is what wordcount finds in a body.
type Counts struct {
	Lines int64 `json:"lines"`
	Words int64 `json:"words"`
}

// countWords reads the body as it streams past (the same read that hashes
// it), a buffer at a time, and reports its progress every 64 MiB.
func countWords(ctx context.Context, body io.Reader, info process.Info, env process.Env) (any, error) {
	var c Counts
	buf := make([]byte, 256<<10)
	inWord := false
	var read, reported int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err // canceled: stop soon
		}
		n, err := body.Read(buf)
		for _, b := range buf[:n] {
			// Words are separated by ASCII white space: in UTF-8 those
			// bytes never occur inside another character.
			space := b == ' ' || b == '\n' || b == '\t' || b == '\r' || b == '\v' || b == '\f'
			if b == '\n' {
				c.Lines++
			}
			if !space && !inWord {
				c.Words++
			}
			inWord = !space
		}
		read += int64(n)
		if read-reported >= 64<<20 {
			reported = read
			env.Progress(fmt.Sprintf("counted %d of %d bytes of %s", read, info.Size, info.URL))
		}
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func main() {
	blobDir := flag.String("blob-dir", "", "the fetch workers' blob directory (required)")
	slots := flag.Int("cpu-slots", cpuworker.DefaultSlots(), "bodies processed at once")
	queue := flag.String("cpu-task-queue", "batchfetch-cpu", "the CPU task queue")
	buildID := flag.String("build-id", os.Getenv("BATCHFETCH_BUILD_ID"), "the build ID of the fetch workers of this release (their --build-id), so that their batches' hashes come here; empty: unversioned")
	flag.Parse()
	if *blobDir == "" {
		log.Fatal("customprocessor: --blob-dir is required (the fetch workers' blob directory)")
	}
	store, err := blobstore.NewDir(*blobDir)
	if err != nil {
		log.Fatal(err)
	}
	addr := os.Getenv("TEMPORAL_ADDRESS")
	if addr == "" {
		addr = client.DefaultHostPort
	}
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: os.Getenv("TEMPORAL_NAMESPACE")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	procs := process.Builtins() // html and image
	procs["wordcount"] = process.Func(countWords)
	var deployment worker.DeploymentOptions
	if *buildID != "" {
		deployment = cpuworker.Versioned(*buildID) // one version with the fetch workers
	}
	w, err := cpuworker.New(c, cpuworker.Options{TaskQueue: *queue, Store: store, StoreLocation: *blobDir, Slots: *slots, Processors: procs, Deployment: deployment})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("CPU worker with wordcount, html and image on %s, blobs in %s", addr, *blobDir)
	if err := w.Run(worker.InterruptCh()); err != nil {
		log.Fatal(err)
	}
}
