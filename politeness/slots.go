package politeness

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// SlotMargin is how long a slot's lease outlasts its request's attempt
// timeout (clocks of workers that differ a little, a request cut late).
const SlotMargin = 15 * time.Second

// DefaultSlotHold is how long a lease lasts for a batch with no attempt
// timeout (it is renewed while its request runs).
const DefaultSlotHold = time.Minute

// maxGenerations bounds the records of one slot a listing reads (there
// are one or two: a holder's, and one it took over and is removing).
const maxGenerations = 64

// storeTimeout bounds one lease operation on the store.
const storeTimeout = 10 * time.Second

// SlotsPrefix is where, under a batch's key prefix, its fetch workers hold
// the in-flight slots of its hosts: <batch>/hostslots/<hex of
// host>/<slot>/<generation>. They go with the batch's other blobs.
const SlotsPrefix = "hostslots"

// slots holds a rule's MaxInFlight over every fetch worker of a store:
// slot k of a host is held by the newest generation record under its
// prefix, until the record's expiry. A worker takes a free slot by
// creating generation 0, an expired one (a worker killed or frozen) by
// creating the next generation; creation is exclusive, so of two workers
// one wins. Release removes the holder's own record.
type slots struct {
	store  blobstore.Store
	leaser blobstore.Leaser
	holder string
	now    func() time.Time
}

// record is what a slot's generation key holds.
type record struct {
	Holder  string    `json:"holder"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// lease is one slot held by this worker.
type lease struct {
	s       *slots
	key     string
	rec     record
	hold    time.Duration
	mu      sync.Mutex // guards rec
	stop    chan struct{}
	renewed chan struct{} // closed when the renewal has stopped
}

// slotPrefix is where slot k of host is held for batch.
func slotPrefix(batch, host string, k int) string {
	return fmt.Sprintf("%s/%s/%s/%d", batch, SlotsPrefix, hostDir(host), k)
}

// hostDir names host in a key: its bytes in hex, or, for a name too long
// for a file name, "sha256-" and the hex of its hash's first 16 bytes
// ("-" for no name).
func hostDir(host string) string {
	switch {
	case host == "":
		return "-"
	case len(host) > 100:
		sum := sha256.Sum256([]byte(host))
		return "sha256-" + hex.EncodeToString(sum[:16])
	}
	return hex.EncodeToString([]byte(host))
}

// take holds one of host's n slots for hold (renewed while held), trying
// them from a random one; nil when every slot is held.
func (s *slots) take(batch, host string, n int, hold time.Duration) (*lease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	first := 0
	if r, err := rand.Int(rand.Reader, big.NewInt(int64(n))); err == nil {
		first = int(r.Int64())
	}
	for i := range n {
		l, err := s.takeSlot(ctx, slotPrefix(batch, host, (first+i)%n), hold)
		if l != nil || err != nil {
			return l, err
		}
	}
	return nil, nil
}

// takeSlot holds the slot under prefix, or is nil when it is held.
func (s *slots) takeSlot(ctx context.Context, prefix string, hold time.Duration) (*lease, error) {
	listed, err := s.leaser.List(ctx, prefix, maxGenerations)
	if err != nil {
		return nil, err
	}
	gen, newest := 0, -1
	for _, k := range listed {
		if g, err := strconv.Atoi(path.Base(k.Key)); err == nil && g >= newest {
			newest = g
		}
	}
	if newest >= 0 {
		rec, err := s.read(ctx, genKey(prefix, newest))
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			return nil, nil // released just now: asked again soon
		case err != nil && !errors.Is(err, errBadRecord):
			return nil, err
		case err == nil && s.now().Before(rec.Expires):
			return nil, nil
		}
		// Expired, or a record that is not one (none is ever written in
		// part): its holder is gone.
		gen = newest + 1
	}
	l := &lease{s: s, key: genKey(prefix, gen), hold: hold, rec: record{Holder: s.holder, Token: newToken(), Expires: s.now().Add(hold)}}
	data, _ := json.Marshal(l.rec)
	if err := s.leaser.CreateNew(ctx, l.key, data); errors.Is(err, blobstore.ErrExists) {
		return nil, nil // another worker was first
	} else if err != nil {
		return nil, err
	}
	for _, k := range listed { // the generations this one replaces
		_ = s.leaser.Remove(ctx, k.Key)
	}
	l.stop, l.renewed = make(chan struct{}), make(chan struct{})
	go l.renew()
	return l, nil
}

func genKey(prefix string, gen int) string { return prefix + "/" + strconv.Itoa(gen) }

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// read is the record under key.
func (s *slots) read(ctx context.Context, key string) (record, error) {
	var rec record
	r, err := s.store.Open(ctx, key)
	if err != nil {
		return rec, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return rec, err
	}
	if json.Unmarshal(b, &rec) != nil {
		return rec, errBadRecord
	}
	return rec, nil
}

// errBadRecord: a slot's key holds no record.
var errBadRecord = errors.New("not a slot record")

// renew pushes the lease's expiry on, each time half of it has passed,
// until release: a request that waits for a connection, or a long body,
// keeps its slot.
func (l *lease) renew() {
	defer close(l.renewed)
	for {
		t := time.NewTimer(l.hold / 2)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !l.write() {
			return
		}
	}
}

// write records a later expiry, unless the slot was taken over (this
// worker froze past its expiry): then the lease is lost.
func (l *lease) write() bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if rec, err := l.s.read(ctx, l.key); err != nil || rec.Token != l.rec.Token {
		return false
	}
	l.mu.Lock()
	l.rec.Expires = l.s.now().Add(l.hold)
	data, _ := json.Marshal(l.rec)
	l.mu.Unlock()
	w, err := l.s.store.Create(ctx, l.key)
	if err != nil {
		return true // asked again at the next renewal
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Abort()
		return true
	}
	_ = w.Commit()
	return true
}

// release gives the slot back: its record goes, unless the lease had
// expired and another worker may have taken the slot since (then only a
// record of its own is removed).
func (l *lease) release() {
	close(l.stop)
	<-l.renewed
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	l.mu.Lock()
	expired := !l.s.now().Before(l.rec.Expires)
	l.mu.Unlock()
	if expired {
		if rec, err := l.s.read(ctx, l.key); err != nil || rec.Token != l.rec.Token {
			return
		}
	}
	_ = l.s.leaser.Remove(ctx, l.key)
}
