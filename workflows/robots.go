package workflows

import "github.com/batchfetch/batchfetch/activities"

// What a batch does about robots.txt (its robots field).
const (
	RobotsObey   = activities.RobotsObey
	RobotsIgnore = activities.RobotsIgnore
	// DefaultRobots is a batch's robots when its input leaves it out.
	//
	// A batch's URLs are each named by whoever starts it, as API calls,
	// one's own sites or a list to crawl: it fetches what it is told, as
	// a browser or curl does, and a crawl opts in. Making "obey" the
	// default changes the commands of a batch that leaves it out (the
	// activities it calls, FetchChunkObeyingRobots): it must then be
	// filled in at the very start of BatchFetch, under a
	// workflow.GetVersion, so that batches started before go on as they
	// ran, and recorded in a new history for the replay test.
	DefaultRobots = RobotsIgnore
)

// obeysRobots tells whether the batch checks each URL against its host's
// robots.txt.
func (s Settings) obeysRobots() bool {
	r := s.Robots
	if r == "" {
		r = DefaultRobots
	}
	return r == RobotsObey
}

// policy is how each URL of the batch is fetched.
func (e *engine) policy() activities.Policy {
	p := activities.Policy{
		AttemptTimeout: e.s.AttemptTimeout, URLTimeout: e.s.URLTimeout, MaxAttempts: e.s.MaxAttempts,
		InitialBackoff: e.s.InitialBackoff, FailFast: e.s.FailFast,
	}
	if e.s.obeysRobots() {
		p.Robots = RobotsObey
	}
	if e.s.PerHost != nil {
		r := *e.s.PerHost
		p.PerHost = &r
	}
	return p
}

// fetchName is the activity that fetches ch: plain, its name for a
// request other than a bare GET (withRequest), or the one of a batch
// that obeys robots.txt (obeying), which only workers that check it have.
func (e *engine) fetchName(ch chunk, plain any, withRequest, obeying string) any {
	switch {
	case e.s.obeysRobots():
		return obeying
	case activities.Asked(e.s.Request, ch.urls):
		return withRequest
	}
	return plain
}
