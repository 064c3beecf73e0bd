-- Auth invalidation: every node keeps a short-lived in-process cache of
-- sessions, bearer secrets and roles (internal/identity/authcache). A change
-- that could end or narrow someone's access tells every node which entries to
-- drop, by NOTIFY on the channel atrium_auth, which PostgreSQL delivers at
-- commit and never for a rolled-back transaction. Triggers, not call sites,
-- send it, so no write path can forget. Payloads:
--   session:<id>  a session was revoked, rotated, shortened or deleted
--   key:<id>      an API key was revoked, changed or deleted
--   pat:<id>      a personal access token was revoked, changed or deleted
--   member:<workspace id>:<user id>  a role changed or a membership ended
--   user:<id>     an account's password, email or deletion changed
-- Writes that only record use (last_seen_at, idle_expires_at moved forward,
-- last_used_at) send nothing: they happen once a minute per secret.
--
-- auth_epoch is SQLite's mechanism (a counter its triggers bump); the table
-- exists here too so both dialects keep the same tables, and nothing on
-- PostgreSQL reads or writes it.
CREATE TABLE auth_epoch (
    id    integer PRIMARY KEY CHECK (id = 1),
    epoch bigint  NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION atrium_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tag text;
BEGIN
    -- OLD carries the identifying columns for both UPDATE and DELETE. Each
    -- table gets its own branch: PL/pgSQL resolves a record's fields only in
    -- the statement that runs.
    IF TG_TABLE_NAME = 'user_session' THEN
        tag := 'session:' || OLD.id::text;
    ELSIF TG_TABLE_NAME = 'api_key' THEN
        tag := 'key:' || OLD.id::text;
    ELSIF TG_TABLE_NAME = 'personal_token' THEN
        tag := 'pat:' || OLD.id::text;
    ELSIF TG_TABLE_NAME = 'membership' THEN
        tag := 'member:' || OLD.workspace_id::text || ':' || OLD.user_id::text;
    ELSIF TG_TABLE_NAME = 'app_user' THEN
        tag := 'user:' || OLD.id::text;
    ELSE
        tag := 'all';  -- unknown to the cache, which then drops everything
    END IF;
    PERFORM pg_notify('atrium_auth', tag);
    RETURN NULL;
END $$;

CREATE TRIGGER user_session_auth_update AFTER UPDATE ON user_session FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.token_hash IS DISTINCT FROM NEW.token_hash
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.idle_expires_at > NEW.idle_expires_at
       OR OLD.reauthenticated_at IS DISTINCT FROM NEW.reauthenticated_at OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION atrium_notify_auth();
CREATE TRIGGER user_session_auth_delete AFTER DELETE ON user_session FOR EACH ROW
    EXECUTE FUNCTION atrium_notify_auth();

CREATE TRIGGER api_key_auth_update AFTER UPDATE ON api_key FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes OR OLD.token_hash IS DISTINCT FROM NEW.token_hash
       OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id)
    EXECUTE FUNCTION atrium_notify_auth();
CREATE TRIGGER api_key_auth_delete AFTER DELETE ON api_key FOR EACH ROW
    EXECUTE FUNCTION atrium_notify_auth();

CREATE TRIGGER personal_token_auth_update AFTER UPDATE ON personal_token FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.token_hash IS DISTINCT FROM NEW.token_hash OR OLD.user_id IS DISTINCT FROM NEW.user_id
       OR OLD.only_workspace_id IS DISTINCT FROM NEW.only_workspace_id)
    EXECUTE FUNCTION atrium_notify_auth();
CREATE TRIGGER personal_token_auth_delete AFTER DELETE ON personal_token FOR EACH ROW
    EXECUTE FUNCTION atrium_notify_auth();

CREATE TRIGGER membership_auth_update AFTER UPDATE ON membership FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id
       OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION atrium_notify_auth();
CREATE TRIGGER membership_auth_delete AFTER DELETE ON membership FOR EACH ROW
    EXECUTE FUNCTION atrium_notify_auth();

CREATE TRIGGER app_user_auth_update AFTER UPDATE ON app_user FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash OR OLD.email IS DISTINCT FROM NEW.email
       OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION atrium_notify_auth();
CREATE TRIGGER app_user_auth_delete AFTER DELETE ON app_user FOR EACH ROW
    EXECUTE FUNCTION atrium_notify_auth();
