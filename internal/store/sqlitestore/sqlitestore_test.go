package sqlitestore_test

import (
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, clock kernel.Clock) store.SystemDB { return testkit.OpenSQLite(t, clock) })
}
