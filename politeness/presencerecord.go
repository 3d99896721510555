package politeness

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// maxPresenceRecords bounds the records of one host listed: more
// workers than that are counted as that many.
const maxPresenceRecords = 1000

// presenceRecord is what a presence record holds: until when it counts
// (Unix milliseconds, the writer's clock).
type presenceRecord struct {
	Until int64 `json:"until"`
}

// write writes or renews the record at key.
func (p *Presence) write(key string) error {
	data, err := json.Marshal(presenceRecord{Until: time.Now().Add(PresenceTTL).UnixMilli()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceOpTimeout)
	defer cancel()
	w, err := p.store.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Commit()
}

// read reads the record at key (false: gone, or not a record).
func (p *Presence) read(ctx context.Context, key string) (presenceRecord, bool) {
	r, err := p.store.Open(ctx, key)
	if err != nil {
		return presenceRecord{}, false
	}
	defer r.Close()
	var rec presenceRecord
	data, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil || json.Unmarshal(data, &rec) != nil {
		return presenceRecord{}, false
	}
	return rec, true
}

// list reads the records of k's host and sets kp's view: the records
// that count now, its own included. A failed listing keeps the last
// view (which goes stale: see share).
func (p *Presence) list(k hostKey, kp *keeper) {
	ctx, cancel := context.WithTimeout(context.Background(), presenceOpTimeout)
	defer cancel()
	listed, err := p.lister.List(ctx, recordPrefix(k), maxPresenceRecords)
	if err != nil {
		return
	}
	now := time.Now()
	count := 1
	for _, l := range listed {
		key := l.Key
		if key == kp.key {
			continue
		}
		rec, ok := p.read(ctx, key)
		if !ok || rec.Until <= now.UnixMilli() {
			continue // gone, or expired
		}
		count++
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kp.listed, kp.count = time.Now(), count
	if !kp.decided && !kp.registered.IsZero() {
		kp.decided, kp.first = true, count == 1
	}
}
