package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
)

// The size mix is what the bench says it is: the same size for the same
// path, a median near 30 KiB, about 1% of 5 MiB, and bodies of exactly
// that size whose sha256 the bench can tell.
func TestSizeMix(t *testing.T) {
	const n = 20000
	var sizes []int64
	large := 0
	for i := range n {
		p := fmt.Sprintf("/mix/test/%d", i)
		s := mixSize(p)
		if again := mixSize(p); again != s {
			t.Fatalf("%s: size %d, then %d", p, s, again)
		}
		if s == mixLarge {
			large++
			continue
		}
		sizes = append(sizes, s)
	}
	slices.Sort(sizes)
	if median := sizes[len(sizes)/2]; median < 27<<10 || median > 33<<10 {
		t.Errorf("median %d bytes, want about 30 KiB", median)
	}
	if large < n/200 || large > n/50 {
		t.Errorf("%d of %d bodies of 5 MiB, want about 1%%", large, n)
	}
	for _, p := range []string{"/mix/a/1", "/mix/a/2", "/mix/b/1"} {
		var body bytes.Buffer
		if err := writeMixBody(&body, p, mixSize(p)); err != nil {
			t.Fatal(err)
		}
		if int64(body.Len()) != mixSize(p) {
			t.Errorf("%s: wrote %d bytes, want %d", p, body.Len(), mixSize(p))
		}
		sum := sha256.Sum256(body.Bytes())
		if got := hex.EncodeToString(sum[:]); got != mixSHA256(p) {
			t.Errorf("%s: sha256 %s, mixSHA256 says %s", p, got, mixSHA256(p))
		}
	}
	a, b := mixSHA256("/mix/a/1"), mixSHA256("/mix/a/2")
	if mixSize("/mix/a/1") == mixSize("/mix/a/2") && a == b {
		t.Errorf("two paths, one body")
	}
}
