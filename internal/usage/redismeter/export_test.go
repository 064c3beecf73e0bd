package redismeter

import (
	"context"

	"github.com/google/uuid"

	"atrium/internal/usage"
)

// ApplyOnly runs a flush's first step alone, as a node that dies before
// writing the store leaves it.
func ApplyOnly(ctx context.Context, c *Counters, batchID uuid.UUID, deltas []usage.Delta) ([]int64, error) {
	return c.apply(ctx, c.prefix+"b:"+batchID.String()+":0", deltas)
}
