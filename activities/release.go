package activities

import (
	"context"
	"fmt"
)

// RemoveWorkRequest names runs of a batch's URLs, by their first URL,
// whose hashes the workflow has recorded.
type RemoveWorkRequest struct {
	Prefix string `json:"prefix"`
	Firsts []int  `json:"firsts"`
}

// RemoveWork removes the work directories (WorkPrefix) of runs whose
// hashes the workflow has recorded: no retry of their fetch or hash can
// come, and no result holds a key into them. So a batch's scratch space
// follows the work in flight, not the batch.
func (f *Fetcher) RemoveWork(ctx context.Context, req RemoveWorkRequest) error {
	stop := heartbeat(ctx, f.heartbeatEvery(), func() any { return nil })
	defer stop()
	for _, first := range req.Firsts {
		if err := f.Store.DeletePrefix(ctx, WorkPrefix(req.Prefix, first)); err != nil {
			return fmt.Errorf("removing the bodies of hashed URLs: %w", err)
		}
	}
	return nil
}
