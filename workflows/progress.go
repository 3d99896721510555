package workflows

import (
	"fmt"

	"github.com/batchfetch/batchfetch/activities"
)

// Progress is the answer to the progress query.
type Progress struct {
	Total    int `json:"total"`
	Done     int `json:"done"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	InFlight int `json:"in_flight"`
	// MaxInFlight is the batch's max_in_flight, what InFlight may reach.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// FetchSlots adds up the fetch slots of the workers that ran the
	// batch's last fetches (each worker once; 0 until one has said).
	// InFlight is never more: a fetch past a worker's slots waits for one.
	FetchSlots int `json:"fetch_slots,omitempty"`
	// Warning says when FetchSlots is less than MaxInFlight, while the
	// batch runs: it cannot have the fetches at once that it asks for.
	Warning string `json:"warning,omitempty"`
	// BacklogBytes are the bytes fetched and waiting for their hash: at
	// the fetch workers' --hash-backlog, no new fetch starts.
	BacklogBytes int64 `json:"backlog_bytes,omitempty"`
	// Recent are the batch's last failures, the latest first (at most
	// recentFailures, URL and error clipped; a staged chunk names only the
	// first URL of it that failed).
	Recent []Result `json:"recent_failures,omitempty"`
	// Hosts are the hosts a batch with a per_host rule waits for or is
	// busy with: the workflow's answer counts its ended chunks (the times
	// a URL waited for its host, why, each host's mean request time); the
	// starter adds what its running chunks' heartbeats say now.
	Hosts *activities.HostsView `json:"hosts,omitempty"`
}

// answer is what the progress query says of p.
func (p Progress) answer() Progress {
	if p.FetchSlots <= 0 {
		return p
	}
	p.InFlight = min(p.InFlight, p.FetchSlots)
	if p.FetchSlots < p.MaxInFlight && p.Done < p.Total {
		p.Warning = fmt.Sprintf("the fetch workers that ran this batch's last fetches have %d fetch slots in all, fewer than its max_in_flight %d: "+
			"at most %d of its fetches run at once (start them with a larger --fetch-slots, or start more of them)", p.FetchSlots, p.MaxInFlight, p.FetchSlots)
	}
	return p
}

// recentFetches is how many of a run's last fetch results tell which
// workers serve it.
const recentFetches = 64

// fetchWorkers are the workers that ran a run's last fetches.
type fetchWorkers struct {
	last []activities.FetchWorker // a ring of up to recentFetches
	next int
}

// saw notes the worker of a fetch result (nil: it did not say) and
// returns the fetch slots of the last fetches' workers, each once (0:
// none said).
func (w *fetchWorkers) saw(fw *activities.FetchWorker) int {
	if fw != nil {
		if len(w.last) < recentFetches {
			w.last = append(w.last, *fw)
		} else {
			w.last[w.next] = *fw
			w.next = (w.next + 1) % recentFetches
		}
	}
	slots := 0
	seen := map[string]bool{}
	for _, f := range w.last {
		if !seen[f.Identity] {
			seen[f.Identity] = true
			slots += f.FetchSlots
		}
	}
	return slots
}

// sawWorker notes who ran a fetch, for the progress query.
func (e *engine) sawWorker(fw *activities.FetchWorker) {
	if fw != nil {
		e.progress.FetchSlots = e.workers.saw(fw)
	}
}
