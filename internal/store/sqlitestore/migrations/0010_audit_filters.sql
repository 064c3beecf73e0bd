-- Filters of the audit log: by action (exact, or a dotted prefix) and by
-- actor. See the PostgreSQL migration of the same number; SQLite compares
-- text by bytes (BINARY) already, so a prefix range needs no collation.
CREATE INDEX audit_log_workspace_action ON audit_log (workspace_id, action, created_at DESC, id DESC);
CREATE INDEX audit_log_workspace_actor ON audit_log (workspace_id, actor_id, created_at DESC, id DESC);
