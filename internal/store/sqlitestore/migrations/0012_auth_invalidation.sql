-- Auth invalidation: see the PostgreSQL migration of the same number. SQLite
-- serves one process (the store is a local file), yet a CLI command in another
-- process may write it too, so instead of a notification each change that
-- could end or narrow someone's access bumps auth_epoch in the same
-- transaction. The cache in internal/identity/authcache reads the epoch (a
-- cheap local read) before each lookup and drops everything when it moved.
-- Writes that only record use (last_seen_at, idle_expires_at moved forward,
-- last_used_at) leave it alone. (Unlike PostgreSQL, an idle expiry moved
-- backwards is not detected here: timestamps are text, and nothing does it.)
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER user_session_auth_update AFTER UPDATE ON user_session
WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.token_hash IS NOT NEW.token_hash
 OR OLD.expires_at IS NOT NEW.expires_at OR OLD.reauthenticated_at IS NOT NEW.reauthenticated_at OR OLD.user_id IS NOT NEW.user_id
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER user_session_auth_delete AFTER DELETE ON user_session
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;

CREATE TRIGGER api_key_auth_update AFTER UPDATE ON api_key
WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.expires_at IS NOT NEW.expires_at
 OR OLD.scopes IS NOT NEW.scopes OR OLD.token_hash IS NOT NEW.token_hash
 OR OLD.workspace_id IS NOT NEW.workspace_id
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER api_key_auth_delete AFTER DELETE ON api_key
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;

CREATE TRIGGER personal_token_auth_update AFTER UPDATE ON personal_token
WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.expires_at IS NOT NEW.expires_at
 OR OLD.token_hash IS NOT NEW.token_hash OR OLD.user_id IS NOT NEW.user_id
 OR OLD.only_workspace_id IS NOT NEW.only_workspace_id
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER personal_token_auth_delete AFTER DELETE ON personal_token
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;

CREATE TRIGGER membership_auth_update AFTER UPDATE ON membership
WHEN OLD.role IS NOT NEW.role OR OLD.workspace_id IS NOT NEW.workspace_id
 OR OLD.user_id IS NOT NEW.user_id
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER membership_auth_delete AFTER DELETE ON membership
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;

CREATE TRIGGER app_user_auth_update AFTER UPDATE ON app_user
WHEN OLD.password_hash IS NOT NEW.password_hash OR OLD.email IS NOT NEW.email
 OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER app_user_auth_delete AFTER DELETE ON app_user
BEGIN UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1; END;
