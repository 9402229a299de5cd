-- Core tenancy, credentials and Viewer studies.
-- Times are BIGINT milliseconds since the Unix epoch (UTC), as on SQLite, so both
-- backends compare and page identically; flags are real BOOLEANs here.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
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
    can_manage_studies   BOOLEAN NOT NULL,
    has_dashboard_access BOOLEAN NOT NULL,
    invited_source       TEXT NOT NULL,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_login_at        BIGINT,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX users_org_email ON users (org_id, lower(email));

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    description         TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    created_by_user_id  TEXT,
    created_at          BIGINT NOT NULL,
    revoked_at          BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE oauth_clients (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    description  TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
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
    is_cancelled           BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled_at           BIGINT,
    assigned_to            TEXT,
    express_customer_id    TEXT,
    created_by_api_key_id  TEXT REFERENCES api_keys (id),
    created_by_user_id     TEXT,
    metadata               TEXT NOT NULL DEFAULT '{}',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, study_instance_uid),
    -- Composite keys: an assignee or creator from another organization cannot be stored at all.
    FOREIGN KEY (org_id, assigned_to) REFERENCES users (org_id, id),
    FOREIGN KEY (org_id, created_by_user_id) REFERENCES users (org_id, id)
);
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
