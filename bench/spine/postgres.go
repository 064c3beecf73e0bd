package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"atrium/bench/benchkit"
)

// copyPlainTable makes B0's table: workspace's definition and rows, without
// its policies. The owner reads the rows through the bypass setting, in one
// transaction-local scope, as the store's system path does.
func copyPlainTable(ctx context.Context, s benchkit.PGSchema, want int) error {
	conn, err := pgx.Connect(ctx, s.OwnerURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			"SELECT set_config('app.bypass_rls', 'on', true)",
			"CREATE TABLE " + plainTable + " (LIKE workspace INCLUDING ALL)",
			"INSERT INTO " + plainTable + " SELECT * FROM workspace",
			"GRANT SELECT ON " + plainTable + " TO " + pgx.Identifier{s.AppRole}.Sanitize(),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		var got int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+plainTable).Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s has %d rows, want %d", plainTable, got, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy workspace to %s: %w", plainTable, err)
	}
	_, err = conn.Exec(ctx, "ANALYZE workspace, "+plainTable)
	return err
}
