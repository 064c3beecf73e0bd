-- TOTP multi-factor authentication: a person's authenticator secret, their
-- backup codes and the short-lived challenges of a two-step login. All three
-- are platform tables: a second factor belongs to a person, not a workspace.

-- user_mfa: one authenticator per person. secret is the TOTP secret sealed
-- with AES-GCM under a key derived from the app secret (base64 of nonce and
-- ciphertext), so the table alone does not yield codes. confirmed_at is NULL
-- while an enrolment waits for its first code; MFA is on once it is set.
-- last_step is the last accepted 30-second time step: a code for that step or
-- an earlier one is refused, so no code works twice.
CREATE TABLE user_mfa (
    user_id      uuid        PRIMARY KEY REFERENCES app_user (id) ON DELETE CASCADE,
    secret       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint      NOT NULL DEFAULT 0
);

-- mfa_backup_code: single-use codes, stored only as their SHA-256 (hex).
CREATE TABLE mfa_backup_code (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    code_hash  text        NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE UNIQUE INDEX mfa_backup_code_user_hash ON mfa_backup_code (user_id, code_hash);

-- mfa_challenge: the second step of a login that proved the first factor
-- (method: password or magic_link). Its token is stored as its SHA-256; it
-- dies at expires_at, at used_at, or after too many wrong codes (attempts).
CREATE TABLE mfa_challenge (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    token_hash text        NOT NULL UNIQUE,
    method     text        NOT NULL CHECK (method IN ('password', 'magic_link')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    used_at    timestamptz,
    ip         text        NOT NULL,
    user_agent text        NOT NULL
);
CREATE INDEX mfa_challenge_user ON mfa_challenge (user_id, created_at);
