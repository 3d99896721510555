package activities

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// DefaultRoomWait is how long a URL waits, in all, for room on a full blob
// disk before it fails with "no space left on device". Bodies of hashed
// URLs are removed as a batch goes, so a full disk is mostly a moment's.
const DefaultRoomWait = 10 * time.Minute

// DefaultBacklog bounds the bytes a batch may have fetched and not yet
// hashed, unless the fetch worker says otherwise (--hash-backlog): small
// enough for a small disk, large enough that hashing never waits for
// fetches.
const DefaultBacklog = 256 << 20

func (f *Fetcher) backlog() int64 {
	if f.Backlog > 0 {
		return f.Backlog
	}
	return DefaultBacklog
}

// reserve is the free space a fetch leaves on the blob disk beyond its
// body: the hash step's own writes (a chunk's results file, a large step
// output) must always find room, or bodies waiting for their hash would
// fill the disk for good. A thirty-second of the disk, 4 to 64 MiB.
func reserve(total int64) int64 {
	return min(max(total/32, 4<<20), 64<<20)
}

// haveRoom refuses, before any byte is stored, a body the blob disk has
// no room for beside its reserve and the bodies this worker is writing
// (length: the body's, -1 unknown). Else it claims the room until
// release is called: hundreds of bodies started at once must not, all
// together, write into the reserve.
func (f *Fetcher) haveRoom(length int64) (release func(), err error) {
	sp, ok := f.Store.(blobstore.Spacer)
	if !ok {
		return func() {}, nil
	}
	claim := length
	if claim < 0 {
		claim = SmallBody // unknown: most are small
	}
	total, free, err := sp.Space()
	if err != nil {
		return func() {}, nil
	}
	if claimed := f.claimed.Add(claim); free-(claimed-claim) < claim+reserve(total) {
		f.claimed.Add(-claim)
		return nil, fmt.Errorf("storing body: %w (%d bytes free on the blob disk, %d kept for hashing, %d for bodies being written)", syscall.ENOSPC, free, reserve(total), claimed-claim)
	}
	return func() { f.claimed.Add(-claim) }, nil
}

// noSpace marks an attempt whose body the store had no room for.
func (a *attempt) noSpace(err error, f *failure) *failure {
	if blobstore.NoSpace(err) {
		f.noSpace, f.need = true, max(a.st.get().Bytes, a.length)
	}
	return f
}

// awaitRoom waits for room for a body that met a full blob disk, after
// its attempt gave it back: nil when the URL may try again (the attempt
// did not count), else its final failure. A body larger than the whole
// disk fails at once; so does any once the URL has waited roomWait in
// all (waited adds up its waits). A URL whose context ends while it
// waits gets back fail, to end as its context says.
func (f *Fetcher) awaitRoom(ctx context.Context, fail *failure, waited *time.Duration) *failure {
	sp, known := f.Store.(blobstore.Spacer)
	final := func(why string) *failure {
		return &failure{outcome: OutcomeError, status: fail.status, msg: "storing body: no space left on device: " + why}
	}
	limit := f.RoomWait
	if limit <= 0 {
		limit = DefaultRoomWait
	}
	// Every call waits at least once: a store that refuses although it
	// says it has room (a quota, no inodes left) is tried again no
	// faster than the waits grow, and fails at limit.
	slept := false
	for {
		if known {
			total, free, err := sp.Space()
			if err == nil && fail.need+reserve(total) > total {
				return final(fmt.Sprintf("the body (%d bytes, as far as known) is larger than the whole blob disk (%d bytes)", fail.need, total))
			}
			if err == nil && slept && free >= fail.need+reserve(total) {
				return nil
			}
		}
		if *waited >= limit {
			return final(fmt.Sprintf("the blob disk stayed full for %s", limit))
		}
		step := min(max(*waited, 250*time.Millisecond), 5*time.Second)
		select {
		case <-time.After(step):
		case <-ctx.Done():
			return fail
		}
		*waited += step
		slept = true
		if !known {
			return nil // no way to look: try again, waiting longer each time
		}
	}
}
