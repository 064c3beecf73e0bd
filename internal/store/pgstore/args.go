package pgstore

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// pgArgs hands UUIDs to pgx in its own type. pgx would otherwise go through
// uuid.UUID's driver.Valuer: format a string, fail to encode it as binary, build
// an error and parse the string back; about 1.7 µs a query. The caller's slice
// is copied, never changed, and only when it holds a UUID.
func pgArgs(args []any) []any {
	var out []any
	for i, a := range args {
		var v any
		switch x := a.(type) {
		case uuid.UUID:
			v = pgtype.UUID{Bytes: x, Valid: true}
		case *uuid.UUID:
			if x == nil {
				v = pgtype.UUID{}
			} else {
				v = pgtype.UUID{Bytes: *x, Valid: true}
			}
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}
