// Package client starts batches of URLs to fetch and reads what they did,
// from Go: a BatchFetch workflow on a Temporal server whose workers poll
// the batchfetch task queues, and the blob store those workers share.
//
//	c, err := client.New(client.Options{Temporal: temporalClient, Store: store})
//	b, err := c.Start(ctx, workflows.Input{URLs: urls}, client.StartOptions{ID: "nightly-2026-12-03"})
//	p, err := b.Progress(ctx)  // the progress query
//	out, err := b.Wait(ctx)    // the output: counts, and the results or their file
//	for r, err := range b.Results(ctx) {
//		// one result per URL, in input order, also from a results file
//	}
//
// Start checks the input before anything starts, as the workflow would
// (an *InvalidInputError naming the field), and sends a URL list of more
// than workflows.InlineLimit URLs (ListInStore), a large request body
// (StartOptions.Body) and earlier results (StartOptions.Previous) through
// the blob store, as the starter does: the batch owns those files and
// removes them when it ends. Starting an ID that already has a batch
// attaches to it (Batch.Attached); Attach finds a batch by its workflow
// ID, AttachRun one of its runs. Batch.Input is what a batch was started
// with; Batch.Describe and DescribePart the server's record of it and of
// its parts: their pending activities, attempts, last failures and
// heartbeats.
//
// A batch that does not complete ends Wait with a typed error:
// *InvalidInputError (the input was refused; nothing was fetched),
// *BatchFailedError (a fail_fast batch stopped at a URL, with the output
// it had so far), *CanceledError (Cancel, or a cancel from elsewhere, with
// the output so far). Match them with errors.As.
//
// Results never holds a batch's results in memory: a batch of a million
// URLs has them in a results file, JSON lines in the blob store, and they
// are read one at a time. Body opens a body the batch kept
// (keep_bodies: a result's body_key) and checks it against the result's
// sha256 as it is read.
//
// Tracing: Start makes a span, "start batch", with Options.TracerProvider
// (OpenTelemetry's global provider by default). Dial the Temporal client
// with the SDK's tracing interceptor, go.temporal.io/sdk/contrib/opentelemetry
// (sdkclient.Options.Interceptors), and run workers with tracing on
// (OTEL_EXPORTER_OTLP_ENDPOINT): the batch is then one trace under that
// span, its workflow, activities, HTTP requests and hashes.
//
// The Options.Store must be the workers' store (the same --blob-dir, or
// the same --blob-url): a results file in another store is a
// *StoreMismatchError, which CheckResultsStore tells before reading.
//
// The starter command is built on this package: what it does with a
// batch, it does through a Client.
package client
