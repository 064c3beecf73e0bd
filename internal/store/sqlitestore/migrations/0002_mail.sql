-- dev_mail: the dev mailbox, where the default Mailer keeps every message it
-- "sends" so that a developer (or a test) can read it. A platform table: mail is
-- addressed to people, not workspaces. to_addrs is a JSON array of strings.
CREATE TABLE dev_mail (
    id          TEXT      PRIMARY KEY,
    to_addrs    TEXT      NOT NULL CHECK (json_valid(to_addrs) AND json_type(to_addrs) = 'array'),
    subject     TEXT      NOT NULL,
    text_body   TEXT      NOT NULL,
    html_body   TEXT      NOT NULL,
    tag         TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX dev_mail_created ON dev_mail (created_at DESC, id DESC);
