package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// describedSchedule is a schedule whose runs read list, as Describe says.
type describedSchedule struct {
	client.ScheduleHandle
	list string
}

func (s describedSchedule) GetID() string { return "nightly" }

func (s describedSchedule) Describe(context.Context) (*client.ScheduleDescription, error) {
	p, err := payloadConverter().ToPayload(workflows.Input{URLsFile: s.list})
	if err != nil {
		return nil, err
	}
	var d client.ScheduleDescription
	d.Schedule.Action = &client.ScheduleWorkflowAction{Workflow: workflows.WorkflowName, Args: []any{p}}
	return &d, nil
}

// Two updates one after the other: the first (L0 to LA) looks at the
// schedule once the second (LA to LB) has made it name LB. L0 is named
// no more: it goes, and LB, the schedule's list, stays.
func TestAnUpdateRemovesItsOldListAfterALaterUpdate(t *testing.T) {
	dir := t.TempDir()
	store, err := blobstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const l0, la, lb = scheduleListPrefix + "nightly-000000.txt", scheduleListPrefix + "nightly-aaaaaa.txt", scheduleListPrefix + "nightly-bbbbbb.txt"
	for _, key := range []string{l0, lb} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, key)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, key), []byte("http://127.0.0.1/a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := options{store: store}
	var stdout, stderr bytes.Buffer
	releaseOldList(context.Background(), nil, describedSchedule{list: lb}, &o, l0, la, &stdout, &stderr)
	if _, err := os.Stat(filepath.Join(dir, l0)); err == nil {
		t.Errorf("the old list %s stays, named by no schedule; the starter said:\n%s%s", l0, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, lb)); err != nil {
		t.Errorf("the schedule's list %s is gone: %v", lb, err)
	}
	// The schedule still naming the old list (the update did not hold):
	// it stays.
	stdout.Reset()
	stderr.Reset()
	releaseOldList(context.Background(), nil, describedSchedule{list: lb}, &o, lb, la, &stdout, &stderr)
	if _, err := os.Stat(filepath.Join(dir, lb)); err != nil {
		t.Errorf("the list the schedule names was removed: %v", err)
	}
	if stderr.Len() == 0 {
		t.Error("nothing said of the list that stays")
	}
}

// lostAnswer is a schedule whose update is made, but whose answer is lost
// on the way back (a deadline, the connection cut).
type lostAnswer struct {
	client.ScheduleHandle
	list string
}

func (s *lostAnswer) GetID() string { return "nightly" }

func (s *lostAnswer) Describe(ctx context.Context) (*client.ScheduleDescription, error) {
	return describedSchedule{list: s.list}.Describe(ctx)
}

func (s *lostAnswer) Update(ctx context.Context, opts client.ScheduleUpdateOptions) error {
	d, err := s.Describe(ctx)
	if err != nil {
		return err
	}
	u, err := opts.DoUpdate(client.ScheduleUpdateInput{Description: *d})
	if err != nil {
		return err
	}
	a := u.Schedule.Action.(*client.ScheduleWorkflowAction)
	var in workflows.Input
	b, _ := json.Marshal(a.Args[0])
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	s.list = in.URLsFile // made
	return serviceerror.NewDeadlineExceeded("context deadline exceeded")
}

// An update whose answer is lost may have been made: the new list stays
// while the schedule names it (its runs would not find it otherwise), and
// the update says it could not tell.
func TestAnUpdateWhoseAnswerIsLostKeepsTheListTheScheduleNames(t *testing.T) {
	dir := t.TempDir()
	store, err := blobstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const l0, la = scheduleListPrefix + "nightly-000000.txt", scheduleListPrefix + "nightly-aaaaaa.txt"
	if err := os.MkdirAll(filepath.Join(dir, scheduleListPrefix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, la), []byte("http://127.0.0.1/a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := options{store: store}
	o.input.URLsFile = la
	o.list.urls = []string{"http://127.0.0.1/a"}
	h := &lostAnswer{list: l0}
	var stderr bytes.Buffer
	err = updateList(context.Background(), h, &o, "nightly", map[string]json.RawMessage{"mode": json.RawMessage(`"collect"`)}, l0, la, &stderr)
	if h.list != la {
		t.Fatalf("the schedule names %q, want %q", h.list, la)
	}
	if _, serr := os.Stat(filepath.Join(dir, la)); serr != nil {
		t.Errorf("the list the schedule names was removed (%v); the update said %v", serr, err)
	}
	if err != nil || !strings.Contains(stderr.String(), "answer was lost") {
		t.Errorf("the update made: %v, stderr %q; want it told made, its answer lost", err, stderr.String())
	}
}
