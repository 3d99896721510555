package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/activities"
)

// keptHosts bounds the hosts a run remembers between chunks: a few times
// what the progress query shows, the busiest kept first.
const keptHosts = 4 * activities.ProgressHosts

// sawHosts adds what an ended chunk says of its hosts to the progress
// query's hosts: the times its URLs were held back for a host, why, and
// the mean time of a host's requests. What a running chunk's URLs wait
// for now is in its heartbeat (the starter shows it).
func (e *engine) sawHosts(hosts []activities.HostView) {
	if len(hosts) == 0 {
		return
	}
	e.progress.Hosts = mergeHosts(e.progress.Hosts, hosts)
}

// mergeHosts is v with hosts added, bounded as the progress query shows
// them; what is left out of v is forgotten.
func mergeHosts(v *activities.HostsView, hosts []activities.HostView) *activities.HostsView {
	all := activities.MergeHosts(v.All(), hosts)
	if len(all) > keptHosts {
		all = activities.TopHosts(all, keptHosts/2, keptHosts/2).All()
	}
	return activities.TopHosts(all, activities.ProgressHosts, activities.SlowestHosts)
}

// detailsHosts is how many hosts a line of the current details names.
const detailsHosts = 3

// hostsText is what the current details say of the hosts: which URLs
// wait for now, or have been held back for so far, and the slowest.
func hostsText(v *activities.HostsView) string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	if line := activities.WaitLine(markdownHosts(v), detailsHosts); line != "" {
		b.WriteString("\n⏳ " + line + "\n")
	} else if held := heldText(v.Waiting); held != "" {
		b.WriteString("\n⏳ " + held + "\n")
	}
	var slow []string
	for _, h := range v.Slowest {
		if len(slow) < detailsHosts {
			slow = append(slow, fmt.Sprintf("%s %s a request (%d)", code(h.Host), time.Duration(h.MeanMS)*time.Millisecond, h.Requests))
		}
	}
	if len(slow) > 0 {
		b.WriteString("\n**Slowest hosts**: " + strings.Join(slow, ", ") + "\n")
	}
	return b.String()
}

// heldText says which hosts held the batch's URLs back so far, and why:
// "URLs waited for their host: `example.com` 12 times (rate 2/s)".
func heldText(waiting []activities.HostView) string {
	var held []string
	for _, h := range waiting {
		if h.Waited > 0 && len(held) < detailsHosts {
			times := "times"
			if h.Waited == 1 {
				times = "time"
			}
			held = append(held, fmt.Sprintf("%s %d %s (%s)", code(h.Host), h.Waited, times, h.Why()))
		}
	}
	if len(held) == 0 {
		return ""
	}
	return "URLs waited for their host: " + strings.Join(held, ", ")
}

// markdownHosts is v with its hosts' names as markdown code.
func markdownHosts(v *activities.HostsView) *activities.HostsView {
	out := *v
	out.Waiting = append([]activities.HostView(nil), v.Waiting...)
	for i := range out.Waiting {
		out.Waiting[i].Host = code(out.Waiting[i].Host)
	}
	return &out
}

// code is s as markdown code, shown as it is.
func code(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}
