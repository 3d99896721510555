package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// storeCheckWait is how long the starter waits for a fetch worker to poll
// before it starts a batch that needs the store anyway: the batch's own
// check then speaks, if the stores differ.
const storeCheckWait = 3 * time.Second

// needsStore tells whether the batch goes through the blob store on the
// starter's side: its URL list, request body or --previous file go in,
// or (when the starter waits) its results or --save's bodies come out.
func (o *options) needsStore() bool {
	in := o.input
	uploads := bfclient.ListInStore(in) || o.req.body != nil || o.previous != ""
	return uploads || !o.noWait && (o.saveDir != "" || !workflows.ResultsInline(in))
}

// workerStore is a blob store a fetch worker says it uses.
type workerStore struct{ id, location string }

// checkStore refuses, before anything is uploaded or started, a batch
// that needs the blob store when the fetch workers polling its task queue
// use another store than this starter. Each fetch worker names its store
// in its poller identity (workers.StoreOf), which DescribeTaskQueue lists:
// nothing is started to ask. Workers that do not say (earlier releases)
// or none polling within storeCheckWait: the batch starts, and its own
// check speaks.
func checkStore(ctx context.Context, c client.Client, o *options) error {
	if !o.needsStore() {
		return nil
	}
	mine, err := blobstore.ID(ctx, o.store)
	if err != nil || mine == "" {
		return nil // the workflow's own check says what is wrong
	}
	ctx, cancel := context.WithTimeout(ctx, storeCheckWait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		theirs, err := workerStores(ctx, c, o.taskQueue)
		if err == nil && len(theirs) > 0 {
			for _, s := range theirs {
				if s.id == mine {
					return nil
				}
			}
			return &exitError{exitStore, storeMismatch(o, mine, theirs[0])}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// workerStores are the stores the fetch workers polling queue name,
// freshly polled ones only (one that stopped stays listed for minutes).
func workerStores(ctx context.Context, c client.Client, queue string) ([]workerStore, error) {
	d, err := c.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return nil, err
	}
	var out []workerStore
	for _, p := range d.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) > pollerFresh {
			continue
		}
		if id, location, ok := workers.StoreOf(p.GetIdentity()); ok {
			out = append(out, workerStore{id, location})
		}
	}
	return out, nil
}

// storeMismatch says that the workers use another store, and the flag
// that names theirs.
func storeMismatch(o *options, mine string, theirs workerStore) error {
	fix := "run the starter with the workers' --blob-dir or --blob-url (their log's `worker starting` line says it: blobs=...)"
	// Another program's identity may say anything: shown, not acted on
	// by the terminal, and quoted for the shell.
	loc := cli.ShellQuote(shown(theirs.location))
	switch {
	case strings.Contains(theirs.location, "://"):
		fix = "run the starter with --blob-url " + loc
	case theirs.location != "":
		fix = "run the starter with --blob-dir " + loc + " (or BATCHFETCH_BLOB_DIR=" + loc + ")"
	}
	where := shown(theirs.location)
	if where == "" {
		where = "location not said"
	}
	return fmt.Errorf("the fetch workers polling task queue %q use another blob store (%s, identity %s) than this starter (%s, identity %s), and this batch goes through it: %s; nothing was started",
		o.taskQueue, where, shown(theirs.id), o.storeLocation(), mine, fix)
}
