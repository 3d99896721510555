package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// memberLife is how long a fetch worker's membership record counts after
// it was last written: a few refreshes, so a worker killed (which writes
// no more) stops being counted soon, one merely slow is not dropped.
const memberLife = 4

// members is the fetch workers of a task queue as their records in the
// blob store they share say: each writes its own under
// workers/<hex of the queue>/<hex of its identity> every refresh, holding
// until when it counts, and counts the records not yet expired. The
// server's list of pollers misses workers for a while (it shows a task
// queue's pollers as one of its partitions saw them); the store does not.
type members struct {
	store  blobstore.Store
	lister blobstore.Lister
	prefix string
	self   string // this worker's record's key
}

// newMembers is nil for a store that cannot list or remove.
func newMembers(store blobstore.Store, queue, identity string) *members {
	l, ok := store.(blobstore.Lister)
	if _, canRemove := store.(blobstore.Remover); !ok || !canRemove {
		return nil
	}
	prefix := "workers/" + hexOf(queue)
	return &members{store: store, lister: l, prefix: prefix, self: prefix + "/" + hexOf(identity)}
}

func hexOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}

// count writes this worker's record (counting for memberLife refreshes)
// and counts the records not expired, this one included; expired ones
// are removed. On a store error it says so, and the caller keeps its
// other count.
func (m *members) count(ctx context.Context, every time.Duration) (int, error) {
	if err := m.write(ctx, time.Now().Add(memberLife*max(every, time.Second))); err != nil {
		return 0, err
	}
	listed, err := m.lister.List(ctx, m.prefix, 10000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range listed {
		until, err := m.read(ctx, l.Key)
		switch {
		case err == nil && time.Now().Before(until):
			n++
		case err == nil || l.Key != m.self:
			_ = m.store.(blobstore.Remover).Remove(ctx, l.Key) // a worker gone
		}
	}
	return max(n, 1), nil
}

func (m *members) write(ctx context.Context, until time.Time) error {
	w, err := m.store.Create(ctx, m.self)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, strconv.FormatInt(until.UnixNano(), 10)); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Commit()
}

func (m *members) read(ctx context.Context, key string) (time.Time, error) {
	r, err := m.store.Open(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		return time.Time{}, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}

// leave removes this worker's record (at stop).
func (m *members) leave(ctx context.Context) {
	if m != nil {
		_ = m.store.(blobstore.Remover).Remove(ctx, m.self)
	}
}
