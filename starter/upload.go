package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/workflows"
)

// inlineRequestsBudget bounds the URLs' own request fields (their JSON
// lines) sent in the input; a list with more goes to the blob store.
const inlineRequestsBudget = 256 << 10

// uploadInputs puts a long URL list, a large request body and the
// --previous file in the blob store, each under a key no other upload has
// (two starters with one --id never overwrite each other's list), and
// marks them the batch's own (remove_inputs): the batch removes them when
// it ends, whatever ends it, and nothing else does while it may read them.
func uploadInputs(ctx context.Context, o *options, id string) error {
	if len(o.input.URLs) > workflows.InlineLimit || o.list.ownBytes() > inlineRequestsBudget {
		// A long list goes through the blob store: Temporal caps a payload at 2 MB.
		key := uploadKey(id, ".txt")
		lines := o.input.URLs
		if len(o.list.urls) == len(lines) {
			lines = o.list.fileLines() // JSON lines as they were given
		}
		if err := upload(ctx, o.store, key, lines); err != nil {
			return &exitError{exitInternal, fmt.Errorf("writing the URL list to the blob store: %w", err)}
		}
		o.uploaded = key
		o.input.URLs, o.input.URLRequests, o.input.URLsFile = nil, nil, key
	}
	if o.req.body != nil {
		key := uploadKey(id, ".body")
		if err := uploadBytes(ctx, o.store, key, o.req.body); err != nil {
			o.dropUploads()
			return &exitError{exitInternal, fmt.Errorf("writing the --data body to the blob store: %w", err)}
		}
		o.uploadedBody = key
		o.input.Body = &activities.BodyValue{Key: key}
	}
	if o.previous != "" {
		key := uploadKey(id, ".previous.jsonl")
		if err := uploadFile(ctx, o.store, key, o.previous); err != nil {
			o.dropUploads()
			return &exitError{exitUsage, fmt.Errorf("--previous: %w", err)}
		}
		o.uploadedPrevious = key
		o.input.PreviousFile = key
	}
	o.input.RemoveInputs = o.uploaded != "" || o.uploadedPrevious != "" || o.uploadedBody != ""
	return nil
}

// uploadKey is a key of its own for one upload of a batch's input.
func uploadKey(id, suffix string) string { return blobstore.UniqueKey("inputs/", id, suffix) }

// dropUploads removes what uploadInputs wrote, for a batch that was not
// started with it.
func (o *options) dropUploads() {
	for _, k := range []string{o.uploaded, o.uploadedPrevious, o.uploadedBody} {
		if k != "" {
			_ = o.store.DeletePrefix(context.Background(), k)
		}
	}
	o.uploaded, o.uploadedPrevious, o.uploadedBody = "", "", ""
}

// dropClosedUploads removes the uploads of a batch that has ended: it
// removed them itself, unless it was terminated (no workflow code runs
// then) or its workers use another store. A batch still running (waiting
// gave up on an error) keeps them.
func (o *options) dropClosedUploads(c client.Client, run client.WorkflowRun) {
	if o.uploaded == "" && o.uploadedPrevious == "" && o.uploadedBody == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		o.dropUploads()
	}
}

// startRefused tells whether a start failed for sure, so that no batch
// was started (and none will remove the uploaded files).
func startRefused(err error) bool {
	var bad *serviceerror.InvalidArgument
	var denied *serviceerror.PermissionDenied
	return errors.As(err, &bad) || errors.As(err, &denied)
}

// payloadConverter is the data converter this starter's client uses: the
// default, or the encrypting one of BATCHFETCH_CODEC_KEYS.
func payloadConverter() converter.DataConverter {
	if opts, err := cli.ClientOptions(); err == nil && opts.DataConverter != nil {
		return opts.DataConverter
	}
	return converter.GetDefaultDataConverter()
}

// upload writes a URL list, one line each, to the blob store under key.
func upload(ctx context.Context, store blobstore.Store, key string, urls []string) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	bw := bufio.NewWriterSize(w, 256<<10)
	for _, u := range urls {
		bw.WriteString(u) //nolint:errcheck // checked at Flush
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}

// uploadBytes writes b to the blob store under key.
func uploadBytes(ctx context.Context, store blobstore.Store, key string, b []byte) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Commit()
}

// uploadFile copies a local file into the blob store under key.
func uploadFile(ctx context.Context, store blobstore.Store, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	return w.Commit()
}
