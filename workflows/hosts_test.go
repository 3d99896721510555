package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/politeness"
)

// The current details say which hosts held the batch's URLs back and
// why, and which are slowest; a host's name is shown as code.
func TestCurrentDetailsSayWhichHostsHeldURLsBack(t *testing.T) {
	p := Progress{Total: 10, Done: 4, OK: 4, InFlight: 2}
	p.Hosts = mergeHosts(nil, []activities.HostView{
		{Host: "127.0.1.5", Waited: 6, Reason: politeness.ReasonRate, Rate: "2/s", Requests: 4, MeanMS: 1200},
		{Host: "quick.test", Requests: 3, MeanMS: 20},
	})
	p.Hosts = mergeHosts(p.Hosts, []activities.HostView{{Host: "127.0.1.5", Waited: 1, Reason: politeness.ReasonRate, Rate: "2/s", Requests: 2, MeanMS: 600}})
	got := detailsText(p)
	for _, want := range []string{
		"⏳ URLs waited for their host: `127.0.1.5` 7 times (rate 2/s)\n",
		"**Slowest hosts**: `127.0.1.5` 1s a request (6), `quick.test` 20ms a request (3)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the details:\n%s\nsay nothing of\n%s", got, want)
		}
	}
	if detailsText(Progress{Total: 1}) != "**0 of 1 URLs done**: 0 ok, 0 failed, 0 in flight\n" {
		t.Errorf("a batch without hosts: %q", detailsText(Progress{Total: 1}))
	}
}

// While URLs wait for their host now, the details say so first, with
// until when a pause lasts; a backquote in a host's name stays code.
func TestCurrentDetailsSayWhenURLsWaitForTheirHost(t *testing.T) {
	until := time.Date(2026, 1, 1, 12, 4, 5, 0, time.UTC).UnixMilli()
	p := Progress{Total: 10, Hosts: activities.TopHosts([]activities.HostView{
		{Host: "example.com", Waiting: 2, Waited: 2, Reason: politeness.ReasonPaused, Until: until},
		{Host: "api`x", Waiting: 1, Waited: 3, Reason: politeness.ReasonRate, Rate: "2/s"},
	}, activities.ProgressHosts, activities.SlowestHosts)}
	want := "⏳ 3 URLs wait for their host: `example.com` (paused by Retry-After until 12:04:05), `api'x` (rate 2/s)\n"
	if got := detailsText(p); !strings.Contains(got, want) {
		t.Errorf("the details:\n%s\nwant the line\n%s", got, want)
	}
}

// A run keeps a bounded number of hosts however many its chunks name.
func TestProgressHostsAreBounded(t *testing.T) {
	var v *activities.HostsView
	for i := range 200 {
		v = mergeHosts(v, []activities.HostView{{Host: strings.Repeat("h", 1+i%50) + ".test", Waited: i, Reason: politeness.ReasonRate, Requests: 1, MeanMS: int64(i)}})
	}
	if n := len(v.Waiting); n != activities.ProgressHosts {
		t.Errorf("%d hosts waited for, want %d", n, activities.ProgressHosts)
	}
	if n := len(v.All()); n > 2*activities.ProgressHosts+activities.SlowestHosts {
		t.Errorf("%d hosts kept, want at most %d", n, 2*activities.ProgressHosts+activities.SlowestHosts)
	}
}
