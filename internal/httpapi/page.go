package httpapi

import (
	"github.com/google/uuid"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
)

// Page is one page of a list: every list answers {items, next_cursor, has_more},
// paged with opaque signed cursors and never counted.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page"`
	HasMore    bool   `json:"has_more"`
}

// listPage serves one page of a keyset-paginated list. It parses rawLimit
// (default 20, capped at 100) and rawCursor (signed and bound to scope, which
// names the list and its owner), asks fetch for limit+1 items after the
// decoded position (nil on the first page), and renders the page with body,
// encoding the last item's position as the next cursor. It returns invalid for
// a bad limit or a tampered or foreign cursor, and fetch's error otherwise.
func listPage[P, S, B any](cursors *cursor.Signer, scope, rawLimit, rawCursor string,
	fetch func(after *P, limit int) ([]S, error), body func(S) B, position func(S) P) (Page[B], error) {
	limit, err := cursor.ParseLimit(rawLimit)
	if err != nil {
		return Page[B]{}, err
	}
	var after *P
	if rawCursor != "" {
		after = new(P)
		if err := cursors.Decode(scope, rawCursor, after); err != nil {
			return Page[B]{}, err
		}
	}
	items, err := fetch(after, limit+1)
	if err != nil {
		return Page[B]{}, err
	}
	page, more := cursor.Trim(items, limit)
	out := Page[B]{Items: make([]B, 0, len(page)), HasMore: more}
	for _, item := range page {
		out.Items = append(out.Items, body(item))
	}
	if more {
		out.NextCursor = cursors.Encode(scope, position(page[len(page)-1]))
	}
	return out, nil
}

// idPosition is where a page keyed by one ID ends.
type idPosition struct {
	ID uuid.UUID `json:"id"`
}

// afterID is the ID a page starts after: uuid.Nil on the first page.
func afterID(p *idPosition) uuid.UUID {
	if p == nil {
		return uuid.Nil
	}
	return p.ID
}

// pathID parses an ID path parameter written with prefix. A malformed one
// answers the same 404 ("<what> not found") as a row that does not exist, so
// a caller cannot tell a hostile ID from a missing one.
func pathID(prefix, what, raw string) (uuid.UUID, error) {
	id, err := kernel.ParseID(prefix, raw)
	if err != nil {
		return uuid.Nil, kernel.NotFound(what)
	}
	return id, nil
}
