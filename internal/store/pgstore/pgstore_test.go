package pgstore_test

import (
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

func TestConformance(t *testing.T) {
	testkit.PostgresURL(t)
	storetest.Run(t, func(t testing.TB, clock kernel.Clock) store.SystemDB { return testkit.OpenPostgres(t, clock) })
}
