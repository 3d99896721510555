package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// scheduleUsage lists the schedule subcommands.
const scheduleUsage = `usage: starter schedule create --id ID (--every 24h | --cron "0 3 * * *") [--incremental] [batch flags] [URL...]
       starter schedule list
       starter schedule describe|trigger|pause|unpause|delete ID

A Temporal Schedule starts a BatchFetch with the same input at each time it
names (see them in the Web UI's Schedules page). A run that would start while
the previous one still runs is skipped. With --incremental, each run compares
with the results of the last run that completed (conditional requests,
not_modified, changed).
`

// runSchedule runs `starter schedule ...`.
func runSchedule(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, scheduleUsage)
		if len(args) == 0 {
			return &exitError{exitUsage, errors.New("schedule: which? create, list, describe, trigger, pause, unpause or delete")}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	if sub == "create" {
		return scheduleCreate(args, stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("starter schedule "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, scheduleUsage) }
	logLevel := fs.String("log-level", "off", "log of the Temporal client")
	var so options
	so.storeFlags(fs, "delete: a list of over 1,000 URLs create put there is removed")
	note := fs.String("note", "", "pause, unpause: why (shown in the Web UI)")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return err
	}
	ctx := context.Background()
	want := 1
	if sub == "list" {
		want = 0
	}
	switch sub {
	case "list", "describe", "trigger", "pause", "unpause", "delete":
	default:
		return &exitError{exitUsage, fmt.Errorf("schedule %s: no such command (create, list, describe, trigger, pause, unpause, delete)", sub)}
	}
	if len(positional) != want {
		return &exitError{exitUsage, fmt.Errorf("schedule %s takes %d argument(s), got %d", sub, want, len(positional))}
	}
	c, err := dial(ctx, *logLevel)
	if err != nil {
		return err
	}
	defer c.Close()
	sc := c.ScheduleClient()
	if sub == "list" {
		return listSchedules(ctx, sc, stdout)
	}
	id := positional[0]
	h := sc.GetHandle(ctx, id)
	switch sub {
	case "describe":
		d, err := h.Describe(ctx)
		if err != nil {
			return scheduleError(id, err)
		}
		return printSchedule(stdout, id, d)
	case "trigger":
		err = h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
		if err == nil {
			fmt.Fprintf(stdout, "schedule %s: a run asked for now (skipped if one is running)\n", id)
		}
	case "pause":
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: orDefault(*note, "paused with starter schedule pause")})
		if err == nil {
			fmt.Fprintf(stdout, "schedule %s paused\n", id)
		}
	case "unpause":
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: orDefault(*note, "unpaused with starter schedule unpause")})
		if err == nil {
			fmt.Fprintf(stdout, "schedule %s unpaused\n", id)
		}
	case "delete":
		return scheduleDelete(ctx, c, h, so, stdout, stderr)
	}
	if err != nil {
		return scheduleError(id, err)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func scheduleError(id string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &exitError{exitNotFound, fmt.Errorf("no schedule %q (starter schedule list)", id)}
	}
	return &exitError{exitInternal, fmt.Errorf("schedule %s: %w", id, err)}
}

// scheduleCreate runs `starter schedule create`.
func scheduleCreate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("starter schedule create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, scheduleUsage+"\nflags of create:\n")
		fs.PrintDefaults()
	}
	var id, cron string
	var every time.Duration
	var incremental, paused bool
	fs.StringVar(&id, "id", "", "the schedule's ID (required); its runs are <ID>-<time>")
	fs.DurationVar(&every, "every", 0, "start a run at this interval (24h)")
	fs.StringVar(&cron, "cron", "", "or at the times of this cron expression (\"0 3 * * *\": 03:00 UTC every day)")
	fs.BoolVar(&incremental, "incremental", false, "each run compares with the last completed run's results (conditional requests, not_modified, changed)")
	fs.BoolVar(&paused, "paused", false, "create it paused")
	o.batchFlags(fs, true)
	fs.StringVar(&o.taskQueue, "task-queue", workflows.TaskQueue, "task queue of the workflow and its fetches")
	o.storeFlags(fs, "a list of over 1,000 URLs is kept there for the runs")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return err
	}
	switch {
	case id == "":
		return &exitError{exitUsage, errors.New("schedule create: --id is required")}
	case (every > 0) == (cron != ""):
		return &exitError{exitUsage, errors.New("schedule create: give one of --every and --cron")}
	case every < 0:
		return &exitError{exitUsage, fmt.Errorf("schedule create: --every %v is negative", every)}
	}
	if o.input.Process == "sha256" {
		o.input.Process = ""
	}
	if incremental {
		o.input.Incremental = id
	}
	if err := o.finishRequest(stdin, urlsFromStdin(positional, o.file, true), true, stderr); err != nil {
		return err
	}
	if o.list, err = readURLs(positional, o.file, stdin, true); err != nil {
		return &exitError{exitUsage, err}
	}
	urls := o.list.urls
	for i, u := range urls {
		if err := workflows.CheckURL(u); err != nil {
			return &exitError{exitUsage, fmt.Errorf("invalid input: %s: %w", o.list.where(i), err)}
		}
	}
	if err := checkOwnRequests(o.input.RequestFields, o.list); err != nil {
		return err
	}
	o.input.URLRequests = o.list.own
	if err := checkInput(o.input, urls); err != nil {
		return err
	}
	ctx := context.Background()
	c, err := dial(ctx, o.logLevel)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx); err == nil {
		return &exitError{exitUsage, fmt.Errorf("schedule %q exists (starter schedule describe %s; delete it first to replace it)", id, id)}
	}
	o.input.URLs = urls
	uploaded := ""
	if len(urls) > workflows.InlineLimit || o.list.ownBytes() > inlineRequestsBudget {
		// Every run reads the list from the blob store, under a key of
		// this schedule's own (schedule delete removes it).
		if o.store, err = openStore(ctx, o); err != nil {
			return &exitError{exitUsage, err}
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		uploaded = scheduleListPrefix + strings.Map(safeKeyRune, id) + "-" + hex.EncodeToString(b[:]) + ".txt"
		if err := upload(ctx, o.store, uploaded, o.list.fileLines()); err != nil {
			return &exitError{exitInternal, fmt.Errorf("writing the URL list to the blob store: %w", err)}
		}
		o.input.URLs, o.input.URLRequests, o.input.URLsFile = nil, nil, uploaded
	}
	spec := client.ScheduleSpec{}
	if every > 0 {
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: every}}
	} else {
		spec.CronExpressions = []string{cron}
	}
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{
			ID:            id,
			Workflow:      workflows.WorkflowName,
			Args:          []any{o.input},
			TaskQueue:     o.taskQueue,
			Memo:          map[string]any{"schedule": id},
			StaticSummary: fmt.Sprintf("%d URLs, scheduled by %s", len(urls), id),
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Paused:  paused,
		Note:    "created with starter schedule create",
	})
	if err != nil {
		if uploaded != "" {
			_ = o.store.DeletePrefix(context.Background(), uploaded)
		}
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
	when := "every " + every.String()
	if cron != "" {
		when = "at " + cron
	}
	fmt.Fprintf(stdout, "schedule %s created: %d URLs %s; a run is skipped while the previous one runs\n", id, len(urls), when)
	if incremental {
		fmt.Fprintf(stdout, "incremental: each run compares with the last completed run's results (blob store key %s)\n", workflows.IncrementalKey(id))
	}
	return nil
}

// scheduleListPrefix is where schedule create keeps lists of over 1,000
// URLs.
const scheduleListPrefix = "inputs/schedules/"

// scheduleList is the key of the URL list a schedule's runs read, when
// schedule create put it in the blob store.
func scheduleList(d *client.ScheduleDescription) string {
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(a.Args) != 1 {
		return ""
	}
	p, ok := a.Args[0].(*commonpb.Payload)
	if !ok {
		return ""
	}
	var in workflows.Input
	if payloadConverter().FromPayload(p, &in) != nil || !strings.HasPrefix(in.URLsFile, scheduleListPrefix) {
		return ""
	}
	return in.URLsFile
}

func listSchedules(ctx context.Context, sc client.ScheduleClient, w io.Writer) error {
	it, err := sc.List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return &exitError{exitInternal, err}
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWHEN\tPAUSED\tNEXT RUN")
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return &exitError{exitInternal, err}
		}
		next := "-"
		if len(e.NextActionTimes) > 0 {
			next = e.NextActionTimes[0].UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", e.ID, specText(e.Spec), e.Paused, next)
	}
	return tw.Flush()
}

func specText(s *client.ScheduleSpec) string {
	if s == nil {
		return "-"
	}
	var parts []string
	for _, i := range s.Intervals {
		parts = append(parts, "every "+i.Every.String())
	}
	for _, c := range s.CronExpressions {
		parts = append(parts, "cron "+c)
	}
	for range s.Calendars {
		parts = append(parts, "calendar")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func printSchedule(w io.Writer, id string, d *client.ScheduleDescription) error {
	fmt.Fprintf(w, "schedule  %s\n", id)
	fmt.Fprintf(w, "when      %s\n", specText(d.Schedule.Spec))
	fmt.Fprintf(w, "paused    %v", d.Schedule.State.Paused)
	if d.Schedule.State.Note != "" {
		fmt.Fprintf(w, " (%s)", d.Schedule.State.Note)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "overlap   %s (a run is skipped while the previous one runs)\n", strings.ToLower(strings.TrimPrefix(d.Schedule.Policy.Overlap.String(), "SCHEDULE_OVERLAP_POLICY_")))
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok {
		fmt.Fprintf(w, "workflow  %s on %s\n", a.Workflow, a.TaskQueue)
	}
	fmt.Fprintf(w, "runs      %d started, %d skipped\n", d.Info.NumActions, d.Info.NumActionsSkippedOverlap)
	for _, r := range d.Info.RecentActions {
		if r.StartWorkflowResult == nil {
			continue
		}
		fmt.Fprintf(w, "  %s  %s\n", r.ActualTime.UTC().Format(time.RFC3339), r.StartWorkflowResult.WorkflowID)
	}
	for _, t := range d.Info.NextActionTimes {
		fmt.Fprintf(w, "next      %s\n", t.UTC().Format(time.RFC3339))
	}
	return nil
}
