-- Viewer invitations and ephemeral viewer sessions.

-- Unicode-lowercased names for the case-insensitive `firstName`/`lastName` filters
-- (SQLite's lower() folds ASCII only). Rows written before this migration get lower().
ALTER TABLE users ADD COLUMN first_name_search TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_name_search TEXT NOT NULL DEFAULT '';
UPDATE users SET first_name_search = lower(first_name), last_name_search = lower(last_name);

CREATE TABLE invitations (
    org_id                 TEXT NOT NULL REFERENCES organizations (id),
    id                     TEXT NOT NULL,
    user_id                TEXT NOT NULL,
    status                 TEXT NOT NULL,
    inviter_user_id        TEXT,
    invited_by_api_key_id  TEXT REFERENCES api_keys (id),
    expires_at             INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id),
    FOREIGN KEY (org_id, inviter_user_id) REFERENCES users (org_id, id)
) WITHOUT ROWID;
CREATE INDEX invitations_by_user ON invitations (org_id, user_id, id);
CREATE INDEX invitations_by_status ON invitations (org_id, status, id);

CREATE TABLE ephemeral_sessions (
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    id                TEXT NOT NULL,
    retrieval_id      TEXT NOT NULL,
    hanging_protocol  TEXT,
    options           TEXT,
    api_key_id        TEXT REFERENCES api_keys (id),
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
