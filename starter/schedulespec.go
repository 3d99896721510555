package main

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
)

// startAtForms are the values --start-at takes.
const startAtForms = "an RFC 3339 time (2026-12-01T03:00:00Z), HH:MM (the next such time, UTC) or now"

// scheduleSpec is the spec of a schedule that runs every interval or at
// a cron expression's times, from --start-at on. With an interval, the
// first run is at startAt and the next ones each interval after it: the
// interval's offset (from the Unix epoch, where Temporal counts
// intervals from) is startAt's, and no run comes before startAt. With
// "now", that first run is started at creation (immediately is true)
// and the interval counts from then. With a cron expression, startAt
// only says when its times begin.
func scheduleSpec(every time.Duration, cron, startAt string, now time.Time) (spec client.ScheduleSpec, immediately bool, err error) {
	if cron != "" {
		spec.CronExpressions = []string{cron}
	} else {
		if every < time.Second || every%time.Second != 0 {
			// The server would refuse it, or run at every whole second.
			return spec, false, fmt.Errorf("--every %v: want a whole number of seconds, at least 1s (schedules count in seconds)", every)
		}
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: every}}
	}
	if startAt == "" {
		return spec, false, nil
	}
	at, immediately, err := parseStartAt(startAt, now)
	if err != nil {
		return spec, false, err
	}
	spec.StartAt = at
	if cron != "" {
		return spec, false, nil
	}
	spec.Intervals[0].Offset = intervalOffset(at, every)
	if immediately {
		// Started at creation; the interval's first time is the next.
		spec.StartAt = at.Add(every)
	}
	return spec, immediately, nil
}

// intervalOffset is where t falls in the intervals of length every (whole
// seconds) counted from the Unix epoch, in seconds as the server counts:
// nanoseconds since 1970 would not fit past 2262.
func intervalOffset(t time.Time, every time.Duration) time.Duration {
	secs := int64(every / time.Second)
	off := t.Unix() % secs
	if off < 0 {
		off += secs
	}
	return time.Duration(off) * time.Second
}

// parseStartAt reads a --start-at value: an RFC 3339 time, HH:MM (the
// next such time, UTC), or now (immediately is true). A time that has
// passed is refused: it could not be the first run.
func parseStartAt(s string, now time.Time) (at time.Time, immediately bool, err error) {
	now = now.UTC()
	if s == "now" {
		return now.Truncate(time.Second), true, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if t.Nanosecond() != 0 {
			return t, false, fmt.Errorf("--start-at %s: want a whole second (schedules count in seconds)", s)
		}
		if !t.After(now) {
			return t, false, fmt.Errorf("--start-at %s has passed (it is %s now): give a later time, HH:MM or now", s, now.Format(time.RFC3339))
		}
		return t.UTC(), false, nil
	}
	if len(s) == len("15:04") {
		if t, err := time.Parse("15:04", s); err == nil {
			at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
			if !at.After(now) {
				at = at.AddDate(0, 0, 1)
			}
			return at, false, nil
		}
	}
	return at, false, fmt.Errorf("--start-at %q: want %s", s, startAtForms)
}
