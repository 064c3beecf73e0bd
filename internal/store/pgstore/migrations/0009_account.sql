-- Account lifecycle: deletion and change of email address.

-- A deleted account keeps its row, anonymised (name, email and password
-- cleared), so that audit entries still name an actor; deleted_at says when.
-- Nothing authenticates it any more: its sessions, tokens and links are ended
-- and its address matches nobody's.
ALTER TABLE app_user ADD COLUMN deleted_at timestamptz;

-- email_change: a pending change of address, confirmed by a single-use link
-- sent to the new address. A platform table like user_token, kept apart
-- because user_token.purpose has a CHECK list SQLite cannot alter. Only the
-- SHA-256 (hex) of the link's token is stored.
CREATE TABLE email_change (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    new_email   text        NOT NULL CHECK (length(new_email) BETWEEN 3 AND 254),
    token_hash  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
-- A person's recent requests, for the request limit and for voiding.
CREATE INDEX email_change_user_created ON email_change (user_id, created_at);
