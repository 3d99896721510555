package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/politeness"
)

// A host paused by one fetch worker (a 429 or 503 with Retry-After) is
// paused for the whole batch: the worker records until when under the
// batch's scratch (HostPauseKey), and every worker running the batch's
// chunks reads the records before it requests the host, at most every
// hostPauseEvery, and pauses the host in its own HostLimits, which ramps
// it back afterwards. The records go with the batch's scratch when it
// ends (RemoveBlobs).
const (
	// hostPauseEvery is how often a worker reads a batch's records
	// (one listing, or one read per host waiting on a store that cannot
	// list): how late another worker's pause may reach it.
	hostPauseEvery = time.Second
	// hostPauseTimeout bounds one read or write of the records.
	hostPauseTimeout = 5 * time.Second
	// maxHostPauses bounds the records one listing reads.
	maxHostPauses = 10_000
)

// hostPauseRecord is one host's pause in one batch.
type hostPauseRecord struct {
	Host  string    `json:"host"`
	Until time.Time `json:"until"`
}

// HostPausePrefix is where the fetch workers of the batch at prefix
// record the hosts they paused.
func HostPausePrefix(prefix string) string { return prefix + "/hostpause" }

// HostPauseKey is where the fetch workers of the batch at prefix record
// until when host is paused.
func HostPauseKey(prefix, host string) string {
	sum := sha256.Sum256([]byte(host))
	return HostPausePrefix(prefix) + "/" + hex.EncodeToString(sum[:16]) + ".json"
}

// hostPauses shares a worker's host pauses with the other fetch workers
// of each batch through the blob store. A nil one shares nothing.
type hostPauses struct {
	store  blobstore.Store
	limits *politeness.HostLimits
	every  time.Duration

	mu      sync.Mutex
	batches map[string]*batchPauses
}

// batchPauses is what a worker last read of one batch's records.
type batchPauses struct {
	mu      sync.Mutex // held while the records are read
	listed  time.Time  // the last listing
	read    map[string]time.Time
	seen    map[string]blobstore.Listed // key -> as last read
	lastUse time.Time
}

// hostPauses is the worker's (nil without a blob store).
func (f *Fetcher) hostPauses() *hostPauses {
	f.pausesOnce.Do(func() {
		if f.Store != nil {
			f.pauses = &hostPauses{store: f.Store, limits: f.hostLimits(), every: hostPauseEvery, batches: map[string]*batchPauses{}}
		}
	})
	return f.pauses
}

// pauseFor is how long a Retry-After of d pauses a host: d, at most
// maxRetryAfter. A URL of the host that the pause would hold past its
// url_timeout does not wait for it: it ends at once (tooLate).
func pauseFor(d time.Duration) time.Duration {
	return min(d, maxRetryAfter)
}

// batch is batch's state, made if need be; batches unused for the
// politeness idle time are forgotten.
func (p *hostPauses) batch(batch string, now time.Time) *batchPauses {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, b := range p.batches {
		if now.Sub(b.lastUse) > politeness.DefaultIdleAfter {
			delete(p.batches, k)
		}
	}
	b := p.batches[batch]
	if b == nil {
		b = &batchPauses{read: map[string]time.Time{}, seen: map[string]blobstore.Listed{}}
		p.batches[batch] = b
	}
	b.lastUse = now
	return b
}

// refresh applies the pauses other workers recorded for batch, unless
// they were read less than p.every ago. hosts are the hosts about to be
// requested, read one by one on a store that cannot list.
func (p *hostPauses) refresh(ctx context.Context, batch string, hosts func() []string) {
	if p == nil {
		return
	}
	now := time.Now()
	b := p.batch(batch, now)
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, hostPauseTimeout)
	defer cancel()
	if l, ok := p.store.(blobstore.Lister); ok {
		if now.Sub(b.listed) >= p.every {
			b.listed = now
			p.fromListing(ctx, l, batch, b)
		}
		return
	}
	for _, h := range hosts() {
		if now.Sub(b.read[h]) >= p.every {
			b.read[h] = now
			p.apply(batch, p.load(ctx, HostPauseKey(batch, h)))
		}
	}
	for h, at := range b.read {
		if now.Sub(at) > politeness.DefaultIdleAfter {
			delete(b.read, h)
		}
	}
}

// fromListing reads the batch's records that are new or changed since
// the last listing.
func (p *hostPauses) fromListing(ctx context.Context, l blobstore.Lister, batch string, b *batchPauses) {
	listed, err := l.List(ctx, HostPausePrefix(batch), maxHostPauses)
	if err != nil {
		return // the next listing may work: a pause missed costs politeness only
	}
	seen := make(map[string]blobstore.Listed, len(listed))
	for _, o := range listed {
		if was, ok := b.seen[o.Key]; ok && was.ModTime.Equal(o.ModTime) && was.Size == o.Size {
			seen[o.Key] = was
			continue
		}
		rec := p.load(ctx, o.Key)
		if rec == nil {
			continue // read again next time
		}
		seen[o.Key] = o
		p.apply(batch, rec)
	}
	b.seen = seen
}

// load is the record under key (nil: none, or unreadable).
func (p *hostPauses) load(ctx context.Context, key string) *hostPauseRecord {
	rc, err := p.store.Open(ctx, key)
	if err != nil {
		return nil
	}
	defer rc.Close()
	var rec hostPauseRecord
	if json.NewDecoder(io.LimitReader(rc, 4096)).Decode(&rec) != nil || rec.Host == "" {
		return nil
	}
	return &rec
}

// apply pauses rec's host, when its pause lasts yet: no longer than
// maxRetryAfter from now, so a record of a century does not hold the
// host for good.
func (p *hostPauses) apply(batch string, rec *hostPauseRecord) {
	if rec == nil {
		return
	}
	now := time.Now()
	until := rec.Until
	if limit := now.Add(maxRetryAfter); until.After(limit) {
		until = limit
	}
	if until.After(now) {
		p.limits.Pause(batch, rec.Host, until)
	}
}

// publish records that host is paused for batch until until, unless a
// record already says as long or longer. Two workers pausing the host at
// once may leave the earlier of their times: each has paused itself.
func (p *hostPauses) publish(batch, host string, until time.Time) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostPauseTimeout)
	defer cancel()
	key := HostPauseKey(batch, host)
	if rec := p.load(ctx, key); rec != nil && !rec.Until.Before(until) {
		return
	}
	b, err := json.Marshal(hostPauseRecord{Host: host, Until: until})
	if err != nil {
		return
	}
	w, err := p.store.Create(ctx, key)
	if err != nil {
		return // the others go on at their pace; this worker has paused
	}
	if _, err := w.Write(b); err != nil {
		_ = w.Abort()
		return
	}
	_ = w.Commit()
}

// waitingHosts are the hosts of the URLs from front on not yet taken.
func waitingHosts(hosts []string, taken []bool, front int) []string {
	var out []string
	seen := map[string]bool{}
	for i := front; i < len(hosts); i++ {
		if !taken[i] && !seen[hosts[i]] {
			seen[hosts[i]] = true
			out = append(out, hosts[i])
		}
	}
	return out
}
