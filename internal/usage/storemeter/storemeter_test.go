package storemeter_test

import (
	"testing"

	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/metertest"
	"atrium/internal/usage/storemeter"
)

func TestConformance(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			metertest.Run(t, func(t *testing.T) metertest.Backend {
				clock := testkit.NewClock()
				db := testkit.OpenStore(t, d, clock)
				return metertest.Backend{DB: db, Clock: clock, New: func(*testing.T) usage.Counters { return storemeter.New(db) }}
			})
		})
	}
}
