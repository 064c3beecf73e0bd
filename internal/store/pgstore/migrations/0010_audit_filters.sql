-- Filters of the audit log: by action (exact, or a dotted prefix such as
-- member.*) and by actor, each served by an index that starts with the
-- workspace and keeps the log's newest-first order.
--
-- A prefix filter is the range action >= 'member.' AND action < 'member/'.
-- That range holds exactly the actions with the prefix only under byte order:
-- a linguistic collation (en_US, say) skips punctuation and would put
-- 'member.added' above 'member/'. Actions are ASCII identifiers, so the
-- column takes the C collation, the same order as SQLite's BINARY, and the
-- index below serves both exact and prefix filters. Same type, so no rewrite.
ALTER TABLE audit_log ALTER COLUMN action TYPE text COLLATE "C";
CREATE INDEX audit_log_workspace_action ON audit_log (workspace_id, action, created_at DESC, id DESC);
CREATE INDEX audit_log_workspace_actor ON audit_log (workspace_id, actor_id, created_at DESC, id DESC);
