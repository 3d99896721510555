// Package politeness keeps a fetch worker's requests to each host within
// a batch's per-host rule: at most MaxInFlight open at once and at most
// Rate a second, both shared out between the fetch workers.
//
// One HostLimits serves every chunk a worker runs. A chunk asks before
// each request and, when the host is not ready, picks a URL of another
// host instead of waiting:
//
//	limits := politeness.New(politeness.Config{Share: share})
//	limits.SetRule(batch, politeness.Rule{MaxInFlight: 2, Rate: 5})
//	release, wait, ok := limits.TryStart(batch, "example.com")
//	if !ok {
//		// try another host's URL; this one is ready in wait
//		// (0: once one of its requests ends)
//	}
//	defer release()
//
// # Sharing between workers
//
// Each worker enforces its share of the rule: rate / share requests a
// second and MaxInFlight / share open at once, share being the number of
// fetch workers (ShareSource, at least 1). A worker that joins others holds its requests back until they have
// counted it (Settler).
//
// Dividing a small MaxInFlight wastes it (rounded down, or less than one
// request each with more workers than it), and shares taken while
// workers count each other differently (one joins or leaves) could add
// up to more. So with several workers and a MaxInFlight of at most 16
// (and before the workers are counted) they hold MaxInFlight together
// in
// the blob store they share (Config.Store, a blobstore.Leaser): each
// request holds one of the host's MaxInFlight slots, a small record under
// <batch>/hostslots/<hex of host>/<slot>/<generation> created only where
// none is. Its record says until when it is held: the batch's attempt
// timeout plus SlotMargin, renewed while the request runs, so a slot of a
// worker killed or frozen is taken over (by creating the next
// generation) once it expires. A host whose slots are all held is not
// ready, and is asked again 50 to 100 ms later. The records live under
// the batch's key prefix and go with its other blobs. A store that
// cannot hold slots leaves each worker one request, and Warning says so.
//
// With a Presence (a blob store that can list), the rate is divided
// between the workers it holds back instead: those with URLs of the host
// waiting that it refused, found by their records in the store under
// <batch>/hostrate/<host>/ (see Presence). A worker alone with a host's
// URLs takes the whole rate. MaxInFlight is shared as above, and a rate
// over PresenceMaxRate a worker is divided between all of them.
//
// A robots.txt Crawl-delay lowers the rate: the rule's rate, or
// 1/Crawl-delay when that is lower, is what is shared.
//
// # Pause and ramp
//
// Pause (a 429 or 503 with Retry-After) stops the host until the given
// time. Then it ramps back: for one step it gets 1/4 of its rate and of
// its in-flight share (at least 1), for the next step 1/2, then all of
// it. A step lasts max(1s, 1/rate) at the full effective rate.
//
// # Memory
//
// Hosts are kept in least-recently-used order: one unused for
// Config.IdleAfter, or the least recently used once there are more than
// Config.MaxHosts, is forgotten (never one with a request open). A
// forgotten host starts again with one request's burst.
package politeness
