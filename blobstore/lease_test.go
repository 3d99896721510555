package blobstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
)

// TestCreateNew: of many writers creating one key at once exactly one
// succeeds, the others get ErrExists and the record is the winner's
// whole; the key is listed (not what is further down, nor the hidden
// files written on the way); Remove frees the key.
func TestCreateNew(t *testing.T) {
	ctx := context.Background()
	for _, loc := range []string{t.TempDir(), "mem://"} {
		t.Run(loc[:4], func(t *testing.T) {
			s, err := blobstore.Open(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			checkCreateNew(t, s)
		})
	}
}

func checkCreateNew(t *testing.T, s blobstore.Store) {
	ctx := context.Background()
	l, ok := s.(blobstore.Leaser)
	if !ok {
		t.Fatalf("%T is no Leaser", s)
	}
	const key = "batches/r/slots/h/0/0"
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := []int{}, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.CreateNew(ctx, key, fmt.Appendf(nil, "holder %d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, i)
			case errors.Is(err, blobstore.ErrExists):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || lost != 7 {
		t.Fatalf("%d won (%v), %d lost: want 1 and 7", len(won), won, lost)
	}
	r, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if want := fmt.Sprintf("holder %d", won[0]); string(b) != want {
		t.Errorf("the record holds %q, want the winner's %q", b, want)
	}
	if err := l.CreateNew(ctx, "batches/r/slots/h/0/1/deeper", []byte("x")); err != nil {
		t.Fatal(err)
	}
	listed, err := l.List(ctx, "batches/r/slots/h/0", 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range listed {
		keys = append(keys, k.Key)
	}
	if !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want only %q", keys, key)
	}

	if err := l.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := l.CreateNew(ctx, key, []byte("again")); err != nil {
		t.Errorf("after Remove: %v", err)
	}
}
