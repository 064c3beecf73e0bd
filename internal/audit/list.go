package audit

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// StoredEntry is an audit entry as stored.
type StoredEntry struct {
	ID         uuid.UUID
	ActorType  string
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	Metadata   []byte // JSON object
	IP         string
	UserAgent  string
	RequestID  string
	CreatedAt  time.Time
}

// Position is where a page of the log ends: the sort key of its last entry.
type Position struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// Filter narrows a listing of the log. Its conditions combine with AND; a
// zero field filters nothing.
type Filter struct {
	// Action is an action ("member.removed") or a dotted prefix followed by
	// ".*" ("member.*"), as ValidActionFilter accepts.
	Action string
	// ActorID is the API form of the actor's ID, as stored: "usr_…", "key_…".
	ActorID string
	// Since keeps entries created at or after it; Until, entries created
	// before it.
	Since, Until time.Time
}

// maxActionLen bounds an action filter; recorded actions are far shorter.
const maxActionLen = 100

var (
	actionPattern       = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	actionPrefixPattern = regexp.MustCompile(`^([a-z][a-z0-9_]*\.)+\*$`)
)

// ValidActionFilter reports whether s is an action filter List takes: a
// dotted lower-case action name such as "member.removed", or a dotted prefix
// followed by ".*" such as "member.*", at most 100 characters.
func ValidActionFilter(s string) bool {
	return len(s) <= maxActionLen && (actionPattern.MatchString(s) || actionPrefixPattern.MatchString(s))
}

// The log reads newest first, by (created_at, id) descending. Filters add
// conditions to the one statement: an action or actor filter is served by
// audit_log_workspace_action or audit_log_workspace_actor (0010), anything
// else by audit_log_workspace_created; all three start with workspace_id.
// Both dialects compare row values.
const (
	listSelectSQL = `SELECT id, actor_type, actor_id, action, target_type, target_id, metadata, ip, user_agent, request_id, created_at
        FROM audit_log WHERE workspace_id = $1`
	listOrderSQL = " ORDER BY created_at DESC, id DESC LIMIT "
)

// List returns up to limit entries of the workspace's log that pass filter,
// newest first, starting after position (nil for the first page). Callers ask
// for one more than they show to learn whether there is a next page; nothing
// is counted. It returns invalid for a malformed action filter or a Since
// after Until, or the store's error.
func List(ctx context.Context, db store.DB, workspaceID uuid.UUID, filter Filter, after *Position, limit int) ([]StoredEntry, error) {
	if filter.Action != "" && !ValidActionFilter(filter.Action) {
		return nil, kernel.Invalid("action", "must be an action such as member.removed, or a prefix such as member.*")
	}
	if !filter.Since.IsZero() && !filter.Until.IsZero() && filter.Since.After(filter.Until) {
		return nil, kernel.Invalid("since", "must not be after until")
	}
	query, args := listQuery(workspaceID, filter, after, limit)
	var out []StoredEntry
	err := db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (StoredEntry, error) {
			var r StoredEntry
			err := row.Scan(&r.ID, &r.ActorType, &r.ActorID, &r.Action, &r.TargetType, &r.TargetID,
				&r.Metadata, &r.IP, &r.UserAgent, &r.RequestID, &r.CreatedAt)
			r.CreatedAt = r.CreatedAt.UTC()
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

// listQuery returns the statement for one page and its arguments: the
// workspace, then one condition per filter field set, then the position.
// Each condition is a fixed fragment; only the placeholder numbers vary.
func listQuery(workspaceID uuid.UUID, filter Filter, after *Position, limit int) (string, []any) {
	var sql strings.Builder
	sql.WriteString(listSelectSQL)
	args := []any{workspaceID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if prefix, ok := strings.CutSuffix(filter.Action, "*"); ok {
		// Every action that starts with "member." sorts at or above it and
		// below "member/", '/' being the byte after '.'; see 0010 for the
		// collation this needs.
		upper := strings.TrimSuffix(prefix, ".") + "/"
		sql.WriteString(" AND action >= " + arg(prefix) + " AND action < " + arg(upper))
	} else if filter.Action != "" {
		sql.WriteString(" AND action = " + arg(filter.Action))
	}
	if filter.ActorID != "" {
		sql.WriteString(" AND actor_id = " + arg(filter.ActorID))
	}
	if !filter.Since.IsZero() {
		sql.WriteString(" AND created_at >= " + arg(filter.Since.UTC()))
	}
	if !filter.Until.IsZero() {
		sql.WriteString(" AND created_at < " + arg(filter.Until.UTC()))
	}
	if after != nil {
		sql.WriteString(" AND (created_at, id) < (" + arg(after.CreatedAt.UTC()) + ", " + arg(after.ID) + ")")
	}
	sql.WriteString(listOrderSQL + arg(limit))
	return sql.String(), args
}
