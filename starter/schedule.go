package main

import (
	"context"
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
const scheduleUsage = `usage: starter schedule create --id ID (--every 24h | --cron "0 3 * * *") [--start-at TIME] [--incremental] [batch flags] [URL...]
       starter schedule update ID [--file urls.txt] [URL...]
       starter schedule list
       starter schedule describe|trigger|pause|unpause|delete ID

A Temporal Schedule starts a BatchFetch with the same input at each time it
names (see them in the Web UI's Schedules page). A run that would start while
the previous one still runs is skipped. With --incremental, each run compares
with the results of the last run that completed (conditional requests,
not_modified, changed). With --every, --start-at names the first run (an
RFC 3339 time, HH:MM for the next such time UTC, or now) and the next ones
follow each interval after it. update replaces the URLs of the runs to
come, every other setting as it was.
`

// runSchedule runs `starter schedule ...`.
func runSchedule(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, scheduleUsage)
		if len(args) == 0 {
			return &exitError{exitUsage, errors.New("schedule: which? create, update, list, describe, trigger, pause, unpause or delete")}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		return scheduleCreate(args, stdin, stdout, stderr)
	case "update":
		return scheduleUpdate(args, stdin, stdout, stderr)
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
		return &exitError{exitUsage, fmt.Errorf("schedule %s: no such command (create, update, list, describe, trigger, pause, unpause, delete)", sub)}
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
	if strings.Contains(err.Error(), "payload encoding is not supported") {
		// Encrypted by a starter that had BATCHFETCH_CODEC_KEYS.
		return &exitError{exitUsage, fmt.Errorf("schedule %s cannot be read (%v): it is encrypted; set BATCHFETCH_CODEC_KEYS as when it was created", id, err)}
	}
	return &exitError{exitInternal, fmt.Errorf("schedule %s: %w", id, err)}
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
	if d.Schedule.Spec != nil && !d.Schedule.Spec.StartAt.IsZero() {
		fmt.Fprintf(w, "from      %s (no run before)\n", d.Schedule.Spec.StartAt.UTC().Format(time.RFC3339))
	}
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
