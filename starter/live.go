package main

import (
	"context"
	"strings"
	"sync"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// The progress query counts a chunk's URLs once the chunk has finished:
// a chunk of 500 slow pages would hold the bar still for minutes. While
// chunks run, their fetch and hash activities heartbeat which of their
// URLs are done, and describing a workflow shows each pending activity's
// last heartbeat. chunkCounts reads them there.

// chunkActivities are the activity types of a chunk (a batch with a
// request, or one that obeys robots.txt, fetches under a name of its
// own). Their activity IDs name the step and the chunk ("fetch-3",
// "hash-3.1": the part of chunk 3 left to a second fetch).
var chunkActivities = map[string]bool{
	"FetchChunk": true, activities.FetchChunkWithRequest: true, activities.FetchChunkObeyingRobots: true, activities.FetchChunkPerHost: true,
	"HashChunk": true,
}

// chunkHeartbeat is what chunkCounts reads of a chunk activity's
// heartbeat: a fetch's URLs done (fetched, or finally failed) and a
// hash's results so far (only their number matters), and a fetch's
// hosts under a per_host rule.
type chunkHeartbeat struct {
	Done    []struct{}            `json:"done"`
	Results []struct{}            `json:"results"`
	Hosts   []activities.HostView `json:"hosts"`
}

// chunkCounts keeps, for every running chunk of a batch and its parts,
// how many of its URLs were seen fetched: its fetch's done URLs, then,
// while it is hashed, as many (its hash's results when they are more).
type chunkCounts struct {
	mu   sync.Mutex
	dc   converter.DataConverter
	seen map[string]map[string]int // by workflow ID, then chunk
	// hosts are what the running fetches said of their hosts, by
	// workflow ID, when last described.
	hosts map[string][]activities.HostView
}

func newChunkCounts(dc converter.DataConverter) *chunkCounts {
	return &chunkCounts{dc: dc, seen: map[string]map[string]int{}, hosts: map[string][]activities.HostView{}}
}

// saw notes the pending activities of workflow id, just described, and
// returns the URLs its running chunks have done. A chunk no longer
// pending is forgotten: its URLs are the progress query's now, or soon.
func (cc *chunkCounts) saw(id string, acts []*workflowpb.PendingActivityInfo) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	before := cc.seen[id]
	now := map[string]int{}
	total := 0
	var hosts [][]activities.HostView
	for _, act := range acts {
		verb, chunk, ok := strings.Cut(act.GetActivityId(), "-")
		if !ok || !chunkActivities[act.GetActivityType().GetName()] {
			continue
		}
		n := before[chunk] // its fetch's count, while it is hashed
		var hb chunkHeartbeat
		if d := act.GetHeartbeatDetails(); d != nil && cc.dc.FromPayloads(d, &hb) == nil {
			if verb == "fetch" {
				n = max(n, len(hb.Done))
				hosts = append(hosts, hb.Hosts)
			} else {
				n = max(n, len(hb.Results))
			}
		}
		now[chunk] = n
		total += n
	}
	if len(now) == 0 {
		delete(cc.seen, id)
	} else {
		cc.seen[id] = now
	}
	cc.sawHosts(id, hosts)
	return total
}

// forget drops what was seen of the workflows not in running.
func (cc *chunkCounts) forget(running map[string]bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id := range cc.seen {
		if !running[id] {
			delete(cc.seen, id)
		}
	}
	for id := range cc.hosts {
		if !running[id] {
			delete(cc.hosts, id)
		}
	}
}

// withRunning is p, asked of batch id just now, with the URLs its running
// chunks (and those of up to partsPerPoll of its parts) have done.
func withRunning(ctx context.Context, b *bfclient.Batch, p workflows.Progress) workflows.Progress {
	rw := &retryWatch{b: b, parts: map[string]retriedActivity{}, counts: newChunkCounts(payloadConverter())}
	if _, _, err := rw.poll(ctx); err == nil {
		p.Done = max(p.Done, min(p.Total, p.Done+rw.fetched))
		p.Hosts = withLiveHosts(p.Hosts, rw.counts.hostsNow())
	}
	return p
}
