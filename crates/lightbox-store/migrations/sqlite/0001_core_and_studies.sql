-- Core tenancy, credentials and Viewer studies.
-- Times are INTEGER milliseconds since the Unix epoch (UTC); flags are INTEGER 0/1
-- (sqlx's Any driver cannot read SQLite BOOLEAN-typed columns).

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    org_id               TEXT NOT NULL REFERENCES organizations (id),
    id                   TEXT NOT NULL,
    email                TEXT NOT NULL,
    first_name           TEXT NOT NULL,
    last_name            TEXT NOT NULL,
    middle_name          TEXT,
    suffix1              TEXT,
    suffix2              TEXT,
    phone_number         TEXT,
    clinic_role          TEXT NOT NULL,
    level                TEXT NOT NULL,
    can_manage_studies   INTEGER NOT NULL,
    has_dashboard_access INTEGER NOT NULL,
    invited_source       TEXT NOT NULL,
    is_active            INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_login_at        INTEGER,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX users_org_email ON users (org_id, lower(email));

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    description         TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    created_by_user_id  TEXT,
    created_at          INTEGER NOT NULL,
    revoked_at          INTEGER
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE oauth_clients (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    description  TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX oauth_clients_org ON oauth_clients (org_id);

CREATE TABLE studies (
    org_id                 TEXT NOT NULL REFERENCES organizations (id),
    id                     TEXT NOT NULL,
    study_instance_uid     TEXT NOT NULL,
    description            TEXT NOT NULL,
    -- Unicode-lowercased description, matched by the case-insensitive contains filter.
    description_search     TEXT NOT NULL,
    severity               TEXT NOT NULL,
    viewer_status          TEXT NOT NULL,
    is_cancelled           INTEGER NOT NULL DEFAULT 0,
    cancelled_at           INTEGER,
    assigned_to            TEXT,
    express_customer_id    TEXT,
    created_by_api_key_id  TEXT REFERENCES api_keys (id),
    created_by_user_id     TEXT,
    metadata               TEXT NOT NULL DEFAULT '{}',
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, study_instance_uid),
    -- Composite keys: an assignee or creator from another organization cannot be stored at all.
    FOREIGN KEY (org_id, assigned_to) REFERENCES users (org_id, id),
    FOREIGN KEY (org_id, created_by_user_id) REFERENCES users (org_id, id)
) WITHOUT ROWID;
-- One index per filterable column, organization first and id last, so every
-- filtered listing is a keyset range scan in id order.
CREATE INDEX studies_by_severity  ON studies (org_id, severity, id);
CREATE INDEX studies_by_status    ON studies (org_id, viewer_status, id);
CREATE INDEX studies_by_cancelled ON studies (org_id, is_cancelled, id);
CREATE INDEX studies_by_assignee  ON studies (org_id, assigned_to, id);
CREATE INDEX studies_by_customer  ON studies (org_id, express_customer_id, id);

-- Server-wide values every replica must agree on (e.g. the URL-signing key).
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
