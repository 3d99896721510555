package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

// HashRequest names the blob to hash.
type HashRequest struct {
	Blob string `json:"blob"`
}

// HashResult is the sha256 of a blob.
type HashResult struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Hasher is the CPU activity: it streams a blob through sha256. Run it on a
// worker of its own (the CPU task queue) sized to the machine's cores.
type Hasher struct {
	Store blobstore.Store
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
}

// hashChunk is how much is hashed between cancellation checks.
const hashChunk = 1 << 20

// Hash returns the sha256 of a blob. It checks for cancellation between
// chunks, so a cancelled batch stops hashing mid-body.
func (h *Hasher) Hash(ctx context.Context, req HashRequest) (*HashResult, error) {
	attempt := activity.GetInfo(ctx).Attempt
	every := h.HeartbeatEvery
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	var done atomic.Int64
	stop := heartbeat(ctx, every, func() Progress { return Progress{Attempt: attempt, Bytes: done.Load()} })
	defer stop()

	r, err := h.Store.Open(ctx, req.Blob)
	if err != nil {
		return nil, temporal.NewApplicationErrorWithOptions(err.Error(), ErrBlob, temporal.ApplicationErrorOptions{
			NonRetryable: errors.Is(err, blobstore.ErrNotFound),
			Details:      []any{FailureDetails{Attempt: attempt}},
		})
	}
	defer r.Close()

	sum := sha256.New()
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := io.CopyBuffer(sum, io.LimitReader(r, hashChunk), *bufp)
		done.Add(n)
		if err != nil {
			return nil, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("reading blob: %v", err), ErrBlob, temporal.ApplicationErrorOptions{
				Details: []any{FailureDetails{Attempt: attempt}},
			})
		}
		if n < hashChunk {
			break
		}
	}
	return &HashResult{SHA256: hex.EncodeToString(sum.Sum(nil)), Size: done.Load()}, nil
}
