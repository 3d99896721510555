package politeness

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// record is what a presence record holds: until when it counts (Unix
// milliseconds, the writer's clock).
type record struct {
	Until int64 `json:"until"`
}

// write writes or renews the record at key.
func (p *Presence) write(key string) error {
	data, err := json.Marshal(record{Until: time.Now().Add(PresenceTTL).UnixMilli()})
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
func (p *Presence) read(ctx context.Context, key string) (record, bool) {
	r, err := p.store.Open(ctx, key)
	if err != nil {
		return record{}, false
	}
	defer r.Close()
	var rec record
	data, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil || json.Unmarshal(data, &rec) != nil {
		return record{}, false
	}
	return rec, true
}

// list reads the records of k's host and sets kp's view: the records
// that count now, its own included. A failed listing keeps the last
// view (which goes stale: see share).
func (p *Presence) list(k hostKey, kp *keeper) {
	ctx, cancel := context.WithTimeout(context.Background(), presenceOpTimeout)
	defer cancel()
	keys, err := p.lister.List(ctx, recordPrefix(k))
	if err != nil {
		return
	}
	now := time.Now()
	count := 1
	for _, key := range keys {
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
