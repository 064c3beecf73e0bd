-- Identity: people, their sessions and their single-use tokens. All three are
-- platform tables: a person exists outside any workspace, so none carries a
-- workspace_id and row-level security does not apply. Secrets are never
-- stored, only their SHA-256 (hex): a leaked table yields no usable session
-- or link.

-- app_user ("user" is reserved in PostgreSQL). email is stored normalised
-- (trimmed, NFC, lower-case), so UNIQUE compares what people mean.
CREATE TABLE app_user (
    id                uuid        PRIMARY KEY,
    email             text        NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    name              text        NOT NULL,
    password_hash     text        NOT NULL,
    email_verified_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- user_session: one signed-in browser. A session ends at revoked_at, at
-- idle_expires_at (pushed forward as it is used) or at expires_at (fixed at
-- login), whichever comes first.
CREATE TABLE user_session (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    token_hash         text        NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    idle_expires_at    timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    reauthenticated_at timestamptz NOT NULL,
    ip                 text        NOT NULL,
    user_agent         text        NOT NULL,
    revoked_at         timestamptz
);
CREATE INDEX user_session_user_created ON user_session (user_id, created_at DESC, id DESC);

-- user_token: single-use links sent by email. email is the address the link
-- went to, so a link outlives no change of address.
CREATE TABLE user_token (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify_email', 'password_reset', 'magic_link')),
    token_hash  text        NOT NULL UNIQUE,
    email       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX user_token_user_purpose ON user_token (user_id, purpose, created_at);
