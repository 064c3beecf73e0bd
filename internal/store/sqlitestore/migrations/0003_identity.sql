-- Identity: people, their sessions and their single-use tokens. All three are
-- platform tables: a person exists outside any workspace, so none carries a
-- workspace_id and no tenant trigger applies. Secrets are never stored, only
-- their SHA-256 (hex): a leaked table yields no usable session or link.
-- Columns and names match the PostgreSQL migration; a test compares them.

-- app_user: email is stored normalised (trimmed, NFC, lower-case), so UNIQUE
-- compares what people mean.
CREATE TABLE app_user (
    id                TEXT      PRIMARY KEY,
    email             TEXT      NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    name              TEXT      NOT NULL,
    password_hash     TEXT      NOT NULL,
    email_verified_at TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

-- user_session: one signed-in browser. A session ends at revoked_at, at
-- idle_expires_at (pushed forward as it is used) or at expires_at (fixed at
-- login), whichever comes first.
CREATE TABLE user_session (
    id                 TEXT      PRIMARY KEY,
    user_id            TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    token_hash         TEXT      NOT NULL UNIQUE,
    created_at         TIMESTAMP NOT NULL,
    last_seen_at       TIMESTAMP NOT NULL,
    idle_expires_at    TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    reauthenticated_at TIMESTAMP NOT NULL,
    ip                 TEXT      NOT NULL,
    user_agent         TEXT      NOT NULL,
    revoked_at         TIMESTAMP
);
CREATE INDEX user_session_user_created ON user_session (user_id, created_at DESC, id DESC);

-- user_token: single-use links sent by email. email is the address the link
-- went to, so a link outlives no change of address.
CREATE TABLE user_token (
    id          TEXT      PRIMARY KEY,
    user_id     TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    purpose     TEXT      NOT NULL CHECK (purpose IN ('verify_email', 'password_reset', 'magic_link')),
    token_hash  TEXT      NOT NULL UNIQUE,
    email       TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);
CREATE INDEX user_token_user_purpose ON user_token (user_id, purpose, created_at);
