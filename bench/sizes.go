package main

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
)

// The size mix: a body's size is log-normal around a median of 30 KiB
// (sigma 1: half the bodies between 15 and 60 KiB, 1 in 40 over 220 KiB),
// and 1 body in 100 is 5 MiB. Size and content follow from the URL's
// path alone, so the site serves them and the bench knows them.
const (
	mixMedian = 30 << 10
	mixSigma  = 1.0
	mixLarge  = 5 << 20
	mixMin    = 256
)

// mixSeed is the path's seed: every draw for the path starts there.
func mixSeed(path string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, path)
	return h.Sum64()
}

// mixSize is the size of the body at path.
func mixSize(path string) int64 {
	r := rand.New(rand.NewPCG(mixSeed(path), 1))
	if r.IntN(100) == 0 {
		return mixLarge
	}
	n := int64(mixMedian * math.Exp(mixSigma*r.NormFloat64()))
	return min(max(n, mixMin), mixLarge)
}

// mixBlock is what bodies are cut from: 1 MiB of pseudo-random bytes,
// twice, so any window of up to 1 MiB is one slice. A body starts at an
// offset of its own and goes round the block.
var mixBlock = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(23, 23))
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return append(b, b...)
}()

// writeMixBody writes the n bytes of the body at path.
func writeMixBody(w io.Writer, path string, n int64) error {
	const block = 1 << 20
	off := int(mixSeed(path) % block)
	for n > 0 {
		k := min(n, int64(block))
		if _, err := w.Write(mixBlock[off : off+int(k)]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// mixSHA256 is the hex sha256 of the body at path.
func mixSHA256(path string) string {
	h := sha256.New()
	_ = writeMixBody(h, path, mixSize(path))
	return hex.EncodeToString(h.Sum(nil))
}
