package workers

import (
	"context"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Fetch workers on one store count each other from their records: each
// counts itself and the others, one that leaves is no longer counted,
// and one that stopped writing (killed) is dropped once its record
// expires, its record removed.
func TestMembersCountEachOtherInTheStore(t *testing.T) {
	ctx := context.Background()
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b, other := newMembers(d, "q", "a"), newMembers(d, "q", "b"), newMembers(d, "another-queue", "c")
	if n, err := a.count(ctx, time.Second); err != nil || n != 1 {
		t.Fatalf("a alone counts %d (%v), want 1", n, err)
	}
	if _, err := other.count(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.count(ctx, time.Second); n != 2 {
		t.Errorf("b counts %d, want 2 (a and itself; not another queue's worker)", n)
	}
	if n, _ := a.count(ctx, time.Second); n != 2 {
		t.Errorf("a counts %d, want 2", n)
	}
	b.leave(ctx)
	if n, _ := a.count(ctx, time.Second); n != 1 {
		t.Errorf("a counts %d after b left, want 1", n)
	}
	// b was killed: its last record expired a moment ago.
	if err := b.write(ctx, time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.count(ctx, time.Second); n != 1 {
		t.Errorf("a counts %d with b's record expired, want 1", n)
	}
	listed, err := d.List(ctx, a.prefix, 100)
	if err != nil || len(listed) != 1 || listed[0].Key != a.self {
		t.Errorf("records left %v (%v), want a's only: an expired one is removed", listed, err)
	}
}

// A store that cannot list keeps no records: the server's pollers count.
func TestMembersNeedAListingStore(t *testing.T) {
	if m := newMembers(struct{ blobstore.Store }{}, "q", "a"); m != nil {
		t.Error("members on a store that cannot list")
	}
}
