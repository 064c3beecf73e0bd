-- Account lifecycle: deletion and change of email address. See the
-- PostgreSQL migration of the same number; both are platform tables, so no
-- tenant trigger applies.

ALTER TABLE app_user ADD COLUMN deleted_at TIMESTAMP;

CREATE TABLE email_change (
    id          TEXT      PRIMARY KEY,
    user_id     TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    new_email   TEXT      NOT NULL CHECK (length(new_email) BETWEEN 3 AND 254),
    token_hash  TEXT      NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);
CREATE INDEX email_change_user_created ON email_change (user_id, created_at);
