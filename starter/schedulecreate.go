package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// scheduleRequest is what `schedule create` was asked for.
type scheduleRequest struct {
	o           options
	id          string
	every       time.Duration
	cron        string
	startAt     string
	incremental bool
	paused      bool
}

// scheduleCreate runs `starter schedule create`.
func scheduleCreate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	r, done, err := parseScheduleCreate(args, stdin, stderr)
	if done || err != nil {
		return err
	}
	o, id := &r.o, r.id
	ctx := context.Background()
	c, err := dial(ctx, o.logLevel)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx); err == nil {
		return &exitError{exitUsage, fmt.Errorf("schedule %q exists (starter schedule describe %s; delete it first to replace it)", id, id)}
	}
	spec, immediately, err := scheduleSpec(r.every, r.cron, r.startAt, time.Now())
	if err != nil {
		return &exitError{exitUsage, err}
	}
	urls := o.list.urls
	o.input.URLs = urls
	uploaded, err := uploadScheduleList(ctx, o, id)
	if err != nil {
		return err
	}
	h, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{
			ID:            id,
			Workflow:      workflows.WorkflowName,
			Args:          []any{o.input},
			TaskQueue:     o.taskQueue,
			Memo:          map[string]any{"schedule": id},
			StaticSummary: scheduleSummary(len(urls), id),
		},
		Overlap:            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Paused:             r.paused,
		TriggerImmediately: immediately,
		Note:               "created with starter schedule create",
	})
	if err != nil {
		if uploaded != "" {
			_ = o.store.DeletePrefix(context.Background(), uploaded)
		}
		return createError(id, err)
	}
	when := "every " + r.every.String()
	if r.cron != "" {
		when = "at " + r.cron
	}
	fmt.Fprintf(stdout, "schedule %s created: %d URLs %s; a run is skipped while the previous one runs\n", id, len(urls), when)
	if r.incremental {
		fmt.Fprintf(stdout, "incremental: each run compares with the last completed run's results (blob store key %s)\n", workflows.IncrementalKey(id))
	}
	if immediately {
		fmt.Fprintln(stdout, "first run: now")
	}
	printNextRuns(ctx, h, r.paused, stdout, stderr)
	return nil
}

// parseScheduleCreate reads create's flags and URLs and refuses what
// cannot run, naming the flag, argument or line. done: the usage was
// asked for.
func parseScheduleCreate(args []string, stdin io.Reader, stderr io.Writer) (r scheduleRequest, done bool, err error) {
	o := &r.o
	fs := flag.NewFlagSet("starter schedule create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, scheduleUsage+"\nflags of create:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&r.id, "id", "", "the schedule's ID (required); its runs are <ID>-<time>")
	fs.DurationVar(&r.every, "every", 0, "start a run at this interval (24h)")
	fs.StringVar(&r.cron, "cron", "", "or at the times of this cron expression (\"0 3 * * *\": 03:00 UTC every day)")
	fs.StringVar(&r.startAt, "start-at", "", "no run before this time: "+startAtForms+"; with --every, the first run is then and the next ones each interval after it")
	fs.BoolVar(&r.incremental, "incremental", false, "each run compares with the last completed run's results (conditional requests, not_modified, changed)")
	fs.BoolVar(&r.paused, "paused", false, "create it paused")
	o.batchFlags(fs, true)
	fs.StringVar(&o.taskQueue, "task-queue", workflows.TaskQueue, "task queue of the workflow and its fetches")
	o.storeFlags(fs, "a list of over 1,000 URLs is kept there for the runs")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return r, done, err
	}
	switch {
	case r.id == "":
		return r, false, &exitError{exitUsage, errors.New("schedule create: --id is required")}
	case (r.every > 0) == (r.cron != ""):
		return r, false, &exitError{exitUsage, errors.New("schedule create: give one of --every and --cron")}
	case r.every < 0:
		return r, false, &exitError{exitUsage, fmt.Errorf("schedule create: --every %v is negative", r.every)}
	case r.paused && r.startAt == "now" && r.every > 0:
		return r, false, &exitError{exitUsage, errors.New("schedule create: --start-at now starts a run at once: leave out --paused, or give a later --start-at")}
	}
	// The time itself is read again at create: here, to refuse it first.
	if _, _, err := scheduleSpec(r.every, r.cron, r.startAt, time.Now()); err != nil {
		return r, false, &exitError{exitUsage, err}
	}
	if o.input.Process == "sha256" {
		o.input.Process = ""
	}
	if r.incremental {
		o.input.Incremental = r.id
	}
	if err := o.finishRequest(stdin, urlsFromStdin(positional, o.file, true), true, stderr); err != nil {
		return r, false, err
	}
	if err := o.readList(positional, stdin, true, stderr); err != nil {
		return r, false, err
	}
	o.input.URLRequests = o.list.own
	if err := checkInput(o.input, o.list.urls); err != nil {
		return r, false, err
	}
	return r, false, nil
}

// uploadScheduleList puts a long URL list (o.input.URLs, with their own
// requests) in the blob store, under a key of this schedule's own that
// every run reads and schedule delete or update removes, and points the
// input at it. It returns the key, "" when the list stays inline.
func uploadScheduleList(ctx context.Context, o *options, id string) (string, error) {
	if !bfclient.ListInStore(o.input) {
		return "", nil
	}
	if o.store == nil {
		var err error
		if o.store, err = openStore(ctx, *o); err != nil {
			return "", &exitError{exitUsage, err}
		}
	}
	key := blobstore.UniqueKey(scheduleListPrefix, id, ".txt")
	if err := bfclient.WriteList(ctx, o.store, key, o.input); err != nil {
		_ = o.store.DeletePrefix(context.WithoutCancel(ctx), key)
		return "", &exitError{exitInternal, fmt.Errorf("writing the URL list to the blob store: %w", err)}
	}
	o.input.URLs, o.input.URLRequests, o.input.URLsFile = nil, nil, key
	return key, nil
}

func scheduleSummary(n int, id string) string {
	return fmt.Sprintf("%d URLs, scheduled by %s", n, id)
}

// createError says why the server refused a schedule.
func createError(id string, err error) error {
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	var bad *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &exists) || strings.Contains(err.Error(), "already"):
		return &exitError{exitUsage, fmt.Errorf("schedule %q exists (starter schedule describe %s; delete it first to replace it)", id, id)}
	case errors.As(err, &bad):
		return &exitError{exitUsage, fmt.Errorf("schedule create: %s", bad.Message)}
	}
	return &exitError{exitInternal, fmt.Errorf("creating schedule %s: %w", id, err)}
}

// printNextRuns prints the next times the schedule starts a run, as the
// server computes them from its spec.
func printNextRuns(ctx context.Context, h client.ScheduleHandle, paused bool, stdout, stderr io.Writer) {
	d, err := h.Describe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "schedule %s: its next runs cannot be read now (starter schedule describe %s): %v\n", h.GetID(), h.GetID(), err)
		return
	}
	var times []string
	for i, t := range d.Info.NextActionTimes {
		if i == 3 {
			break
		}
		times = append(times, t.UTC().Format(time.RFC3339))
	}
	if len(times) == 0 {
		fmt.Fprintln(stdout, "next runs: none")
		return
	}
	note := ""
	if paused {
		note = " (paused: none starts until starter schedule unpause " + h.GetID() + ")"
	}
	fmt.Fprintf(stdout, "next runs: %s%s\n", strings.Join(times, ", "), note)
}
