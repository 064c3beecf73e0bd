package store

import (
	"context"
	"fmt"

	"atrium/internal/kernel"
)

// DeleteInBatches calls batch, which deletes at most limit rows in a
// transaction of its own and returns how many it deleted, until a call
// deletes fewer than limit or ctx ends. Background cleanups use it so that no
// transaction holds more than limit rows' locks, however much there is to
// delete. It returns the total deleted, with batch's error or ctx's, or
// internal if limit is not positive.
func DeleteInBatches(ctx context.Context, limit int, batch func(ctx context.Context, limit int) (int64, error)) (int64, error) {
	if limit <= 0 {
		return 0, kernel.Internal(fmt.Errorf("store: delete in batches of %d", limit))
	}
	var total int64
	for {
		n, err := batch(ctx, limit)
		total += n
		if err != nil || n < int64(limit) {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
