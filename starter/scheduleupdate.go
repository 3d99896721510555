package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// errScheduleChanged refuses an update when the schedule's URL list
// changed between the look at it and the update.
var errScheduleChanged = errors.New("its URL list changed meanwhile (another update?): nothing was changed, run it again")

// scheduleUpdate runs `starter schedule update ID [--file F] [URL...]`:
// the schedule's runs fetch these URLs from now on, with every other
// field of their input as it was. A list the schedule kept in the blob
// store goes, but never from under a run that may still read it.
func scheduleUpdate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("starter schedule update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, scheduleUsage+"\nflags of update:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.file, "file", "", "the new URLs from this file ('-' for stdin), one per line, as for create")
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "leave out the invalid entries of the URLs given and report them on stderr, instead of refusing the update")
	o.storeFlags(fs, "where create (or an update) put a list of over 1,000 URLs, and where a new one goes")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return err
	}
	if len(positional) == 0 {
		return &exitError{exitUsage, errors.New("schedule update takes the schedule's ID, then the new URLs (or --file)")}
	}
	id, urlArgs := positional[0], positional[1:]
	ctx := context.Background()
	c, err := dial(ctx, o.logLevel)
	if err != nil {
		return err
	}
	defer c.Close()
	h := c.ScheduleClient().GetHandle(ctx, id)
	d, err := h.Describe(ctx)
	if err != nil {
		return scheduleError(id, err)
	}
	_, fields, in, err := scheduleInput(d)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("schedule %s: %w", id, err)}
	}
	// The new list is checked with the schedule's own request fields.
	o.input = in
	if err := o.readList(urlArgs, stdin, true, stderr); err != nil {
		return err
	}
	o.input.URLs, o.input.URLRequests, o.input.URLsFile = o.list.urls, o.list.own, ""
	if err := checkInput(o.input, o.list.urls); err != nil {
		return err
	}
	old := scheduleList(d)
	if o.store, err = openListStore(ctx, o, id, old, "nothing was changed"); err != nil {
		return err
	}
	uploaded, err := uploadScheduleList(ctx, &o, id)
	if err != nil {
		return err
	}
	if err := updateList(ctx, h, &o, id, fields, old, uploaded, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schedule %s updated: its runs fetch %d URLs from now on (%s)\n", id, len(o.list.urls), listPlace(uploaded))
	if old != "" {
		releaseOldList(ctx, c, h, &o, old, uploaded, stdout, stderr)
	}
	return nil
}

// updateList makes the schedule's runs read o's list (uploaded: its key in
// the blob store, if it went there) instead of old, every other field of
// their input (fields) as it was. An update refused removes the upload;
// one whose answer was lost may have been made, and then the schedule
// names the upload, which stays.
func updateList(ctx context.Context, h client.ScheduleHandle, o *options, id string, fields map[string]json.RawMessage, old, uploaded string, stderr io.Writer) error {
	drop := func() {
		if uploaded != "" {
			_ = o.store.DeletePrefix(context.WithoutCancel(ctx), uploaded)
		}
	}
	if _, err := withURLs(fields, o.input); err != nil {
		drop()
		return &exitError{exitInternal, err}
	}
	err := h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		// The schedule as it is now: only its URLs change.
		a, fields, _, err := scheduleInput(&u.Description)
		if err != nil {
			return nil, err
		}
		if scheduleList(&u.Description) != old {
			return nil, errScheduleChanged
		}
		args, err := withURLs(fields, o.input)
		if err != nil {
			return nil, err
		}
		a.Args = []any{args}
		a.StaticSummary = scheduleSummary(len(o.list.urls), id)
		return &client.ScheduleUpdate{Schedule: &u.Description.Schedule}, nil
	}})
	switch {
	case errors.Is(err, errScheduleChanged):
		drop()
		return &exitError{exitState, fmt.Errorf("schedule %s: %w", id, err)}
	case err != nil && uploaded != "":
		// The update may have been made, its answer lost: the schedule
		// says whether it names the new list.
		d, derr := h.Describe(context.WithoutCancel(ctx))
		if derr != nil {
			fmt.Fprintf(stderr, "the new URL list %s stays in the blob store: whether the schedule names it cannot be told now: %v\n", uploaded, derr)
			return scheduleError(id, err)
		}
		if scheduleList(d) == uploaded {
			fmt.Fprintf(stderr, "schedule %s: the update's answer was lost (%v), but the schedule names the new list\n", id, err)
			return nil
		}
		drop()
		return scheduleError(id, err)
	case err != nil:
		return scheduleError(id, err)
	}
	return nil
}

// releaseOldList removes the URL list the schedule named before the
// update, or hands it to a run that may still read it, once the
// schedule is seen to name it no more: the new list, or that of a later
// update (keys are never reused, so no later update names it again).
func releaseOldList(ctx context.Context, c client.Client, h client.ScheduleHandle, o *options, old, uploaded string, stdout, stderr io.Writer) {
	d, err := h.Describe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "the old URL list %s stays in the blob store: the schedule cannot be read now: %v\n", old, err)
		return
	}
	if list := scheduleList(d); list == old {
		fmt.Fprintf(stderr, "the old URL list %s stays in the blob store: the schedule still names it, not the new list %q\n", old, uploaded)
		return
	}
	releaseList(ctx, c, o.store, "the old URL list", old, d.Info.RunningWorkflows, stdout, stderr)
}

func listPlace(key string) string {
	if key == "" {
		return "in the schedule"
	}
	return "kept in the blob store as " + key
}

// scheduleInput is the BatchFetch input a schedule's runs start with:
// its action, its JSON fields as they are (fields this starter does not
// know included), and decoded. It is read with the converter the
// starter's client uses (encrypted with BATCHFETCH_CODEC_KEYS, if set).
func scheduleInput(d *client.ScheduleDescription) (*client.ScheduleWorkflowAction, map[string]json.RawMessage, workflows.Input, error) {
	var in workflows.Input
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != workflows.WorkflowName || len(a.Args) != 1 {
		return nil, nil, in, fmt.Errorf("its action is not a %s workflow with one input", workflows.WorkflowName)
	}
	p, ok := a.Args[0].(*commonpb.Payload)
	if !ok {
		return nil, nil, in, errors.New("its input cannot be read")
	}
	var fields map[string]json.RawMessage
	if err := payloadConverter().FromPayload(p, &fields); err != nil {
		return nil, nil, in, fmt.Errorf("its input cannot be read (with BATCHFETCH_CODEC_KEYS set when it was created, set them here too): %w", err)
	}
	b, _ := json.Marshal(fields)
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, nil, in, fmt.Errorf("its input cannot be read: %w", err)
	}
	return a, fields, in, nil
}

// withURLs is the input fields with those of the URL list (urls,
// urls_file) taken from in, every other one left as it is.
func withURLs(fields map[string]json.RawMessage, in workflows.Input) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(workflows.Input{URLs: in.URLs, URLRequests: in.URLRequests, URLsFile: in.URLsFile})
	if err != nil {
		return nil, err
	}
	var list map[string]json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		out[k] = v
	}
	for _, k := range []string{"urls", "urls_file"} {
		delete(out, k)
		if v, ok := list[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}
