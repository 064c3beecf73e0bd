package webhooks_test

import (
	"context"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/webhooks"
)

func TestOldDeliveriesAreDeleted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		ep, _ := b.create(t, newReceiver(t, nil).URL)
		settled, _ := b.svc.SendTest(b.ctx, b.res, ep.ID)
		pending, _ := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err := b.run(t, settled, 1); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(webhooks.DeliveryRetention - time.Minute)
		if n, err := webhooks.DeleteOldDeliveries(context.Background(), b.db); err != nil || n != 0 {
			t.Fatalf("before the retention ends: %d deleted, %v", n, err)
		}
		b.clock.Advance(2 * time.Minute)
		if n, err := webhooks.DeleteOldDeliveries(context.Background(), b.db); err != nil || n != 1 {
			t.Fatalf("after the retention: %d deleted, %v", n, err)
		}
		_, err := b.svc.GetDelivery(b.ctx, b.res, ep.ID, settled.ID)
		wantCode(t, err, kernel.CodeNotFound)
		if got := b.get(t, pending); got.Status != webhooks.StatusPending {
			t.Fatalf("a pending delivery was deleted: %+v", got)
		}
	})
}
