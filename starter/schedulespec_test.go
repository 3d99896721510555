package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

func TestParseStartAt(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 20, 30, 500, time.UTC)
	for _, tc := range []struct {
		in, want string
		now      bool
	}{
		{"2026-12-01T03:00:00Z", "2026-12-01T03:00:00Z", false},
		{"2026-12-01T04:00:00+01:00", "2026-12-01T03:00:00Z", false},
		{"15:04", "2026-11-30T15:04:00Z", false},
		{"03:00", "2026-12-01T03:00:00Z", false}, // passed today: tomorrow
		{"14:20", "2026-12-01T14:20:00Z", false}, // this minute has begun
		{"now", "2026-11-30T14:20:30Z", true},
	} {
		at, immediately, err := parseStartAt(tc.in, now)
		if err != nil || at.Format(time.RFC3339) != tc.want || immediately != tc.now {
			t.Errorf("--start-at %s: %v %v %v, want %s %v", tc.in, at.Format(time.RFC3339), immediately, err, tc.want, tc.now)
		}
	}
	for in, want := range map[string]string{
		"tomorrow":             `--start-at "tomorrow": want an RFC 3339 time (2026-12-01T03:00:00Z), HH:MM (the next such time, UTC) or now`,
		"25:00":                `--start-at "25:00": want`,
		"2026-12-01 03:00":     `--start-at "2026-12-01 03:00": want`,
		"2026-11-29T03:00:00Z": "--start-at 2026-11-29T03:00:00Z has passed (it is 2026-11-30T14:20:30Z now)",
	} {
		if _, _, err := parseStartAt(in, now); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--start-at %s: %v, want %q", in, err, want)
		}
	}
}

func TestScheduleSpecStartAt(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 20, 30, 0, time.UTC)
	spec, immediately, err := scheduleSpec(24*time.Hour, "", "2026-12-01T03:00:00Z", now)
	want := client.ScheduleIntervalSpec{Every: 24 * time.Hour, Offset: 3 * time.Hour}
	if err != nil || immediately || spec.Intervals[0] != want || !spec.StartAt.Equal(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("--every 24h --start-at 03:00: %+v %v %v", spec, immediately, err)
	}
	spec, immediately, _ = scheduleSpec(time.Hour, "", "now", now)
	want = client.ScheduleIntervalSpec{Every: time.Hour, Offset: 20*time.Minute + 30*time.Second}
	if !immediately || spec.Intervals[0] != want || !spec.StartAt.Equal(now.Add(time.Hour)) {
		t.Errorf("--every 1h --start-at now: %+v %v", spec, immediately)
	}
	spec, immediately, _ = scheduleSpec(0, "0 3 * * *", "2026-12-01T03:00:00Z", now)
	if immediately || len(spec.Intervals) != 0 || spec.CronExpressions[0] != "0 3 * * *" || !spec.StartAt.Equal(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("--cron with --start-at: %+v %v", spec, immediately)
	}
}

// TestScheduleStartAt: create --every --start-at, as a user runs it: it
// prints the next runs, and the server's own next times (and the spec
// it holds) start at that time and follow each interval.
func TestScheduleStartAt(t *testing.T) {
	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	base := fmt.Sprintf("start-at-%d", time.Now().UnixNano())
	later := time.Now().UTC().Add(2 * time.Hour)
	for _, tc := range []struct {
		startAt string
		want    time.Time
	}{
		{later.Truncate(time.Second).Format(time.RFC3339), later.Truncate(time.Second)},
		{later.Format("15:04"), later.Truncate(time.Minute)},
	} {
		id := base + "-" + strings.ReplaceAll(tc.startAt, ":", "")
		r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--start-at", tc.startAt, "--paused", site.URL+"/a")
		if r.code != 0 {
			t.Fatalf("create --start-at %s: exit %d %s", tc.startAt, r.code, r.stderr)
		}
		defer starter(t, "", nil, "schedule", "delete", id)
		next := func(i int) string { return tc.want.Add(time.Duration(i) * 24 * time.Hour).Format(time.RFC3339) }
		if !strings.Contains(r.stdout, "next runs: "+next(0)+", "+next(1)+", "+next(2)+" (paused") {
			t.Errorf("create --start-at %s printed:\n%s", tc.startAt, r.stdout)
		}
		d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		iv := d.Schedule.Spec.Intervals
		if len(iv) != 1 || iv[0].Every != 24*time.Hour || iv[0].Offset != intervalOffsetUTC(tc.want, 24*time.Hour) || !d.Schedule.Spec.StartAt.Equal(tc.want) {
			t.Errorf("--start-at %s: spec %+v from %v, want every 24h offset %v from %v", tc.startAt, iv, d.Schedule.Spec.StartAt, intervalOffsetUTC(tc.want, 24*time.Hour), tc.want)
		}
		if len(d.Info.NextActionTimes) < 2 || !d.Info.NextActionTimes[0].Equal(tc.want) || !d.Info.NextActionTimes[1].Equal(tc.want.Add(24*time.Hour)) {
			t.Errorf("--start-at %s: next times %v, want %v then a day later", tc.startAt, d.Info.NextActionTimes, tc.want)
		}
		if r := starter(t, "", nil, "schedule", "describe", id); !strings.Contains(r.stdout, "from      "+next(0)+" (no run before)") {
			t.Errorf("describe:\n%s", r.stdout)
		}
	}

	// now: a run at once, the next an interval later.
	id := base + "-now"
	before := time.Now().Truncate(time.Second)
	r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "1h", "--start-at", "now", site.URL+"/now")
	if r.code != 0 || !strings.Contains(r.stdout, "first run: now\n") {
		t.Fatalf("create --start-at now: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", id)
	after := time.Now()
	d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := d.Schedule.Spec.StartAt
	if start.Before(before.Add(time.Hour)) || start.After(after.Add(time.Hour)) || d.Schedule.Spec.Intervals[0].Offset != intervalOffsetUTC(start, time.Hour) {
		t.Errorf("--start-at now: from %v offset %v, want an hour after creation (%v to %v)", start, d.Schedule.Spec.Intervals[0].Offset, before, after)
	}
	if len(d.Info.NextActionTimes) == 0 || !d.Info.NextActionTimes[0].Equal(start) {
		t.Errorf("--start-at now: next times %v, want %v first", d.Info.NextActionTimes, start)
	}
	if !strings.Contains(r.stdout, "next runs: "+start.UTC().Format(time.RFC3339)+", ") {
		t.Errorf("create --start-at now printed:\n%s", r.stdout)
	}
	waitOK(t, scheduleRun(t, c, id, ""), 1)

	// With --cron, it only says from when.
	cronID := base + "-cron"
	if r := starter(t, "", nil, "schedule", "create", "--id", cronID, "--cron", "0 3 * * *", "--start-at", later.Truncate(time.Second).Format(time.RFC3339), "--paused", site.URL+"/a"); r.code != 0 {
		t.Fatalf("create --cron --start-at: exit %d %s", r.code, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", cronID)
	if d, err := c.ScheduleClient().GetHandle(ctx, cronID).Describe(ctx); err != nil || !d.Schedule.Spec.StartAt.Equal(later.Truncate(time.Second)) || len(d.Schedule.Spec.Intervals) != 0 {
		t.Errorf("--cron --start-at: %+v %v", d.Schedule.Spec, err)
	}

	for _, args := range [][]string{
		{"--every", "24h", "--start-at", "tomorrow"},
		{"--every", "24h", "--start-at", "2020-01-01T00:00:00Z"},
		{"--every", "24h", "--start-at", "now", "--paused"},
	} {
		bad := base + "-bad"
		r := starter(t, "", nil, append([]string{"schedule", "create", "--id", bad, site.URL + "/a"}, args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--start-at") {
			t.Errorf("%v: exit %d, want %d naming --start-at\n%s", args, r.code, exitUsage, r.stderr)
		}
		if _, err := c.ScheduleClient().GetHandle(ctx, bad).Describe(ctx); err == nil {
			t.Errorf("%v: a schedule was created", args)
		}
	}
}

func intervalOffsetUTC(t time.Time, every time.Duration) time.Duration {
	return time.Duration(t.Unix()%int64(every/time.Second)) * time.Second
}

// scheduleRun is the ID of a run the schedule started, other than not,
// as the schedule's own record lists it.
func scheduleRun(t *testing.T, c client.Client, id, not string) string {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) { // polling the schedule's own record
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s started no run (but %q) within a minute", id, not)
		}
		d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range d.Info.RecentActions {
			if w := a.StartWorkflowResult; w != nil && w.WorkflowID != not {
				return w.WorkflowID
			}
		}
	}
}

// The server counts a schedule's intervals and offsets in whole seconds:
// an --every it would cut short, or refuse, is refused here naming the
// flag; a --start-at in a fraction of a second too. A start far ahead
// keeps its offset (past 2262 nanoseconds since 1970 no longer fit).
func TestScheduleSpecInWholeSeconds(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 20, 30, 0, time.UTC)
	for _, tc := range []struct {
		every   time.Duration
		startAt string
		want    string
	}{
		{500 * time.Millisecond, "", "--every 500ms: want a whole number of seconds, at least 1s"},
		{1500 * time.Millisecond, "", "--every 1.5s: want a whole number of seconds, at least 1s"},
		{time.Nanosecond, "now", "--every 1ns: want a whole number of seconds"},
		{time.Hour, "2026-12-01T03:00:00.5Z", "--start-at 2026-12-01T03:00:00.5Z: want a whole second"},
	} {
		if _, _, err := scheduleSpec(tc.every, "", tc.startAt, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--every %v --start-at %q: %v, want %q", tc.every, tc.startAt, err, tc.want)
		}
	}
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	spec, _, err := scheduleSpec(90*time.Minute, "", far.Format(time.RFC3339), now)
	if err != nil || spec.Intervals[0].Offset != intervalOffsetUTC(far, 90*time.Minute) {
		t.Errorf("--every 90m --start-at %s: offset %v (%v), want %v", far.Format(time.RFC3339), spec.Intervals[0].Offset, err, intervalOffsetUTC(far, 90*time.Minute))
	}
	if _, _, err := scheduleSpec(0, "0 3 * * *", "", now); err != nil {
		t.Errorf("--cron: %v", err)
	}
}

// Odd --start-at forms are refused, each saying what is wanted: 24:00,
// an hour or minute of one digit, a leap second.
func TestParseStartAtOddForms(t *testing.T) {
	now := time.Date(2026, 6, 30, 14, 20, 30, 0, time.UTC)
	for _, in := range []string{"24:00", "3:5", "3:05", "12:60", "2026-06-30T23:59:60Z"} {
		if _, _, err := parseStartAt(in, now); err == nil || !strings.Contains(err.Error(), "want "+startAtForms) {
			t.Errorf("--start-at %s: %v, want %q", in, err, startAtForms)
		}
	}
}
