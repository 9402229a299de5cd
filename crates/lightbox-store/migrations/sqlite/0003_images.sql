-- Pre-encounter images (candidhealth Images v1). Times are INTEGER ms (UTC);
-- flags are INTEGER 0/1 (sqlx's Any driver cannot read SQLite BOOLEAN columns).

CREATE TABLE images (
    org_id             TEXT NOT NULL REFERENCES organizations (id),
    id                 TEXT NOT NULL,
    version            INTEGER NOT NULL,
    file_name          TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    file_type          TEXT NOT NULL,
    status             TEXT NOT NULL,
    coverage_id        TEXT,
    coverage_side      TEXT,
    patient_id         TEXT,
    patient_notes      TEXT,
    deactivated        INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL,
    updating_user_id   TEXT NOT NULL,
    -- Binds upload links to this image and names its upload object.
    upload_nonce       TEXT NOT NULL,
    -- Set once, when verified bytes are stored; never changed afterwards.
    blob_key           TEXT,
    blob_size          INTEGER,
    blob_content_type  TEXT,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
-- One active FRONT and one active BACK per coverage; enforced here so that
-- concurrent creates cannot both pass a check.
CREATE UNIQUE INDEX images_one_side_per_coverage ON images (org_id, coverage_id, coverage_side)
    WHERE deactivated = 0 AND coverage_id IS NOT NULL;
CREATE INDEX images_by_updated  ON images (org_id, updated_at, id);
CREATE INDEX images_by_patient  ON images (org_id, patient_id);
CREATE INDEX images_by_coverage ON images (org_id, coverage_id);
