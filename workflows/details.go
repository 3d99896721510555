package workflows

import (
	"fmt"
	"strconv"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// recentFailures is how many of a batch's last failures its progress and
// its current details show.
const recentFailures = 5

// FailureSample is how many failed URLs an Output lists in Failures.
const FailureSample = activities.FailureSample

// noteFailed puts r among the progress's last failures, when it is a
// failure with a name (a staged chunk's fetch names only its first).
func noteFailed(p *Progress, r Result) {
	if r.URL == "" || r.Outcome == "" || r.Outcome == OutcomeCanceled || activities.Succeeded(r.Outcome) {
		return
	}
	note := Result{URL: activities.Clip(activities.Redact(r.URL), 200), Outcome: r.Outcome, Status: r.Status, Error: activities.Clip(r.Error, 200)}
	p.Recent = mergeRecent([]Result{note}, p.Recent)
}

// mergeRecent puts newer before older, each URL once, at most
// recentFailures.
func mergeRecent(newer, older []Result) []Result {
	out := make([]Result, 0, recentFailures)
	seen := map[string]bool{}
	for _, r := range append(append([]Result(nil), newer...), older...) {
		if !seen[r.URL] && len(out) < recentFailures {
			seen[r.URL] = true
			out = append(out, r)
		}
	}
	return out
}

// showDetails sets the workflow's current details, which the Web UI shows
// on the batch's page: its counts, a warning, and its last failures. They
// live in the worker's memory (the UI asks for them with a query), so
// they cost no history.
func showDetails(ctx workflow.Context, p Progress) {
	workflow.SetCurrentDetails(ctx, detailsText(p.answer()))
}

// detailsText is p in the Web UI's markdown.
func detailsText(p Progress) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%d of %d URLs done**: %d ok, %d failed", p.Done, p.Total, p.OK, p.Failed))
	if p.Done < p.Total {
		b.WriteString(fmt.Sprintf(", %d in flight", p.InFlight))
	}
	b.WriteString("\n")
	if p.Warning != "" {
		b.WriteString("\n⚠ " + p.Warning + "\n")
	}
	b.WriteString(hostsText(p.Hosts))
	if len(p.Recent) > 0 {
		b.WriteString("\n**Last failures**\n\n")
		for _, r := range p.Recent {
			b.WriteString("- " + failureLine(r) + "\n")
		}
	}
	return b.String()
}

// failureLine says what happened to one URL, on one line.
func failureLine(r Result) string {
	what := r.Outcome
	if r.Status != 0 {
		what += " " + strconv.Itoa(r.Status)
	}
	line := "`" + strings.ReplaceAll(r.URL, "`", "%60") + "` " + what
	if r.Error != "" {
		// Words of the server fetched (a reason phrase): shown as they
		// are, not as markdown (a link, an image, HTML).
		line += ": `" + strings.ReplaceAll(strings.Join(strings.Fields(r.Error), " "), "`", "'") + "`"
	}
	return line
}

// sampleFailures returns the first FailureSample failed results (canceled
// ones left out), clipped, in results order.
func sampleFailures(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if len(out) == FailureSample {
			break
		}
		if s, ok := activities.SampleOf(r); ok {
			out = append(out, s)
		}
	}
	return out
}
