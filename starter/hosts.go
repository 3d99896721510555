package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/activities"
)

// sawHosts keeps what the running fetches of workflow id said of their
// hosts. Called with cc.mu held.
func (cc *chunkCounts) sawHosts(id string, hosts [][]activities.HostView) {
	merged := activities.MergeHosts(hosts...)
	if len(merged) == 0 {
		delete(cc.hosts, id)
		return
	}
	cc.hosts[id] = merged
}

// hostsNow is what the running fetches of the batch and its parts said
// of their hosts when last described.
func (cc *chunkCounts) hostsNow() []activities.HostView {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ids := make([]string, 0, len(cc.hosts))
	for id := range cc.hosts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	lists := make([][]activities.HostView, 0, len(ids))
	for _, id := range ids {
		lists = append(lists, cc.hosts[id])
	}
	return activities.MergeHosts(lists...)
}

// withLiveHosts is the progress query's hosts (its ended chunks') with
// what running chunks say now: the requests open and URLs waiting.
func withLiveHosts(v *activities.HostsView, live []activities.HostView) *activities.HostsView {
	if len(live) == 0 {
		return v
	}
	return activities.TopHosts(activities.MergeHosts(v.All(), live), activities.ProgressHosts, activities.SlowestHosts)
}

// waitNote is what the bar adds while URLs wait for their host: how
// many, and the host most waited for and why: "  3 URLs wait for
// 127.0.1.5 (rate 2/s)", "  5 URLs wait for their host, 4 for 127.0.1.5
// (rate 2/s)".
func waitNote(v *activities.HostsView) string {
	n := v.WaitingNow()
	if n == 0 {
		return ""
	}
	top := v.Waiting[0]
	urls := "URLs wait"
	if n == 1 {
		urls = "URL waits"
	}
	if top.Waiting == n {
		return fmt.Sprintf("  %d %s for %s (%s)", n, urls, top.Host, top.Why())
	}
	return fmt.Sprintf("  %d %s for their host, %d for %s (%s)", n, urls, top.Waiting, top.Host, top.Why())
}

// hostsLines are what `starter status` says of the batch's hosts: which
// URLs wait for now, or waited for, and the slowest ("" lines left out).
func hostsLines(v *activities.HostsView) []string {
	if v == nil {
		return nil
	}
	var lines []string
	if line := activities.WaitLine(v, 3); line != "" {
		lines = append(lines, "hosts: "+line)
	}
	var held []string
	for _, h := range v.Waiting {
		if h.Waited > 0 && len(held) < 3 {
			held = append(held, fmt.Sprintf("%s %d (%s)", h.Host, h.Waited, h.Why()))
		}
	}
	if len(held) > 0 {
		lines = append(lines, "hosts: URLs held back for their host so far: "+strings.Join(held, ", "))
	}
	var slow []string
	for _, h := range v.Slowest {
		slow = append(slow, fmt.Sprintf("%s %s a request (%d)", h.Host, time.Duration(h.MeanMS)*time.Millisecond, h.Requests))
	}
	if len(slow) > 0 {
		lines = append(lines, "hosts: slowest: "+strings.Join(slow, ", "))
	}
	return lines
}

// sawHosts notes what running chunks said of their hosts just now.
func (b *barState) sawHosts(hosts []activities.HostView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hosts = hosts
}

// liveHosts is what running chunks said of their hosts when last seen.
func (b *barState) liveHosts() []activities.HostView {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hosts
}
