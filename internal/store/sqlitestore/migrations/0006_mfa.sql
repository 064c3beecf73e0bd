-- TOTP multi-factor authentication. See the PostgreSQL migration of the same
-- number; all three are platform tables, so no tenant trigger applies.
-- Columns and names match the PostgreSQL migration; a test compares them.

CREATE TABLE user_mfa (
    user_id      TEXT      PRIMARY KEY REFERENCES app_user (id) ON DELETE CASCADE,
    secret       TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_step    INTEGER   NOT NULL DEFAULT 0
);

CREATE TABLE mfa_backup_code (
    id         TEXT      PRIMARY KEY,
    user_id    TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    code_hash  TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE UNIQUE INDEX mfa_backup_code_user_hash ON mfa_backup_code (user_id, code_hash);

CREATE TABLE mfa_challenge (
    id         TEXT      PRIMARY KEY,
    user_id    TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    token_hash TEXT      NOT NULL UNIQUE,
    method     TEXT      NOT NULL CHECK (method IN ('password', 'magic_link')),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    attempts   INTEGER   NOT NULL DEFAULT 0,
    used_at    TIMESTAMP,
    ip         TEXT      NOT NULL,
    user_agent TEXT      NOT NULL
);
CREATE INDEX mfa_challenge_user ON mfa_challenge (user_id, created_at);
