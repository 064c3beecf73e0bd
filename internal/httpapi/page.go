package httpapi

// Page is one page of a list: every list answers {items, next_cursor, has_more},
// paged with opaque signed cursors and never counted.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page"`
	HasMore    bool   `json:"has_more"`
}
