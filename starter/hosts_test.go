package main

import (
	"strings"
	"testing"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/workflows"
)

// The running chunks of a batch with a per_host rule (and of its parts)
// say which hosts their URLs wait for: the bar names the host most waited
// for, status the hosts, with what the progress query counted.
func TestTheBarSaysWhichHostURLsWaitFor(t *testing.T) {
	cc := newChunkCounts(converter.GetDefaultDataConverter())
	beat := func(done int, hosts ...activities.HostView) activities.FetchCheckpoint {
		return activities.FetchCheckpoint{Done: make([]activities.Fetched, done), Hosts: hosts}
	}
	rate := activities.HostView{Host: "127.0.1.5", Waiting: 3, Waited: 4, Reason: politeness.ReasonRate, Rate: "2/s", InFlight: 1}
	if got := cc.saw("batch", []*workflowpb.PendingActivityInfo{
		pendingChunk(t, activities.FetchChunkPerHost, "fetch-0", beat(2, rate)),
		pendingChunk(t, activities.FetchChunkPerHost, "fetch-1", beat(1, activities.HostView{Host: "127.0.1.5", Waiting: 1, Reason: politeness.ReasonRate, Rate: "2/s"})),
	}); got != 3 {
		t.Errorf("the per-host chunks have done %d URLs, want 3", got)
	}
	cc.saw("batch/part-1", []*workflowpb.PendingActivityInfo{
		pendingChunk(t, activities.FetchChunkPerHost, "fetch-7", beat(0, activities.HostView{Host: "other.test", Waiting: 1, Reason: politeness.ReasonPaused})),
	})
	p := workflows.Progress{Total: 20, Done: 5, OK: 5, InFlight: 4,
		Hosts: &activities.HostsView{Slowest: []activities.HostView{{Host: "slow.test", Requests: 2, MeanMS: 1500}}}}
	p.Hosts = withLiveHosts(p.Hosts, cc.hostsNow())
	line := progressLine(p, 0, 0)
	if want := "in flight 4  5 URLs wait for their host, 4 for 127.0.1.5 (rate 2/s)"; !strings.HasSuffix(line, want) {
		t.Errorf("the bar %q does not end with %q", line, want)
	}
	got := strings.Join(hostsLines(p.Hosts), "\n")
	for _, want := range []string{
		"hosts: 5 URLs wait for their host: 127.0.1.5 (rate 2/s), other.test (paused by Retry-After)",
		"hosts: slowest: slow.test 1.5s a request (2)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status says\n%s\nnot\n%s", got, want)
		}
	}
	cc.forget(map[string]bool{"batch": true})
	if n := len(cc.hostsNow()); n != 1 {
		t.Errorf("%d hosts after the part ended, want the batch's 1", n)
	}
	cc.saw("batch", nil)
	if waitNote(withLiveHosts(nil, cc.hostsNow())) != "" || progressLine(workflows.Progress{Total: 1}, time.Second, 0) != "[........................] 0/1  ok 0  failed 0  in flight 0" {
		t.Error("the bar says URLs wait with no chunk running")
	}
}
