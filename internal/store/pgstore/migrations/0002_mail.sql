-- dev_mail: the dev mailbox, where the default Mailer keeps every message it
-- "sends" so that a developer (or a test) can read it. A platform table: mail is
-- addressed to people, not workspaces. to_addrs is a JSON array of strings.
CREATE TABLE dev_mail (
    id          uuid        PRIMARY KEY,
    to_addrs    text        NOT NULL CHECK (jsonb_typeof(to_addrs::jsonb) = 'array'),
    subject     text        NOT NULL,
    text_body   text        NOT NULL,
    html_body   text        NOT NULL,
    tag         text        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX dev_mail_created ON dev_mail (created_at DESC, id DESC);
