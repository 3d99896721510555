package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// exampleClient connects to the Temporal server at TEMPORAL_ADDRESS (the
// SDK's default, localhost:7233, without it) and opens the workers' blob
// directory.
func exampleClient() *client.Client {
	tc, err := sdkclient.Dial(sdkclient.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS")})
	if err != nil {
		log.Fatal(err)
	}
	store, err := blobstore.NewDir("/var/lib/batchfetch/blobs") // the workers' --blob-dir
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Options{Temporal: tc, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// Start a batch, wait for it, and read its results.
func Example() {
	ctx := context.Background()
	c := exampleClient()
	b, err := c.Start(ctx, workflows.Input{
		URLs:        []string{"https://example.com/", "https://example.org/a"},
		MaxInFlight: 20,
	}, client.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	out, err := b.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d ok, %d failed of %d\n", out.OK, out.Failed, out.Total)
	for r, err := range b.Results(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.URL, r.Outcome, r.Status, r.SHA256)
	}
}

// A refused input names its field; a fail_fast batch that stopped, or a
// canceled one, carries what it had done.
func ExampleBatch_Wait() {
	ctx := context.Background()
	c := exampleClient()
	b, err := c.Start(ctx, workflows.Input{URLs: []string{"https://example.com/"}, Mode: workflows.ModeFailFast}, client.StartOptions{})
	var invalid *client.InvalidInputError
	if errors.As(err, &invalid) {
		log.Fatalf("refused: %s (field %s)", invalid.Message, invalid.Field)
	} else if err != nil {
		log.Fatal(err)
	}
	out, err := b.Wait(ctx)
	var failed *client.BatchFailedError
	var canceled *client.CanceledError
	switch {
	case errors.As(err, &failed):
		fmt.Println("stopped:", failed.Err)
		if failed.Output != nil {
			fmt.Printf("%d ok before it stopped\n", failed.Output.OK)
		}
	case errors.As(err, &canceled):
		fmt.Println(canceled)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("%d ok of %d\n", out.OK, out.Total)
	}
}

// Watch a running batch from anywhere by its workflow ID.
func ExampleClient_Attach() {
	ctx := context.Background()
	c := exampleClient()
	b, err := c.Attach(ctx, "nightly-2026-12-03")
	if err != nil {
		log.Fatal(err)
	}
	p, err := b.Progress(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d of %d done, %d in flight\n", p.Done, p.Total, p.InFlight)
}

// Cancel a batch: what it had finished keeps its results.
func ExampleBatch_Cancel() {
	ctx := context.Background()
	c := exampleClient()
	b, err := c.Attach(ctx, "nightly-2026-12-03")
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Cancel(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = b.Wait(ctx)
	var canceled *client.CanceledError
	if errors.As(err, &canceled) && canceled.Output != nil {
		fmt.Printf("%d ok, %d canceled\n", canceled.Output.OK, canceled.Output.Canceled)
	}
}

// A million URLs: the list goes through the blob store, the results come
// back in a results file, read one at a time.
func ExampleBatch_Results() {
	ctx := context.Background()
	c := exampleClient()
	urls := make([]string, 0, 1_000_000)
	for i := range 1_000_000 {
		urls = append(urls, fmt.Sprintf("https://example.com/page/%d", i))
	}
	b, err := c.Start(ctx, workflows.Input{URLs: urls, MaxInFlight: 1000}, client.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	failed := 0
	for r, err := range b.Results(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		if r.Outcome != workflows.OutcomeOK {
			failed++
		}
	}
	fmt.Println(failed, "failed")
}

// Keep the bodies, and read one back.
func ExampleBatch_Body() {
	ctx := context.Background()
	c := exampleClient()
	b, err := c.Start(ctx, workflows.Input{URLs: []string{"https://example.com/"}, KeepBodies: true}, client.StartOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for r, err := range b.Results(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		body, err := b.Body(ctx, r)
		if errors.Is(err, client.ErrNoBody) {
			continue // the URL failed
		} else if err != nil {
			log.Fatal(err)
		}
		_, err = io.Copy(os.Stdout, body) // ends in an error if it is not the body the result names
		body.Close()
		if err != nil {
			log.Fatal(err)
		}
	}
}

// Compare with an earlier batch's results: conditional requests, and
// which bodies changed. A start of an ID that has a batch attaches to it.
func ExampleStartOptions() {
	ctx := context.Background()
	c := exampleClient()
	previous, err := os.Open("nightly-2026-12-02.jsonl") // as the results file holds them
	if err != nil {
		log.Fatal(err)
	}
	defer previous.Close()
	b, err := c.Start(ctx, workflows.Input{URLs: []string{"https://example.com/"}},
		client.StartOptions{ID: "nightly-2026-12-03", Previous: previous})
	if err != nil {
		log.Fatal(err)
	}
	if b.Attached() {
		in, err := b.Input(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("attached to %s, started with %d URLs\n", b.ID(), len(in.URLs))
	}
	out, err := b.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if out.Changed != nil {
		fmt.Println(*out.Changed, "changed")
	}
}
