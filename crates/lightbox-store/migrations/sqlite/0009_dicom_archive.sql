-- The DICOM archive: which organization a DIMSE association reaches (its called
-- AE title), who may send, and the patient/study/series/instance index that
-- QIDO-RS answers from and WADO-RS reads files through. Instances keep their
-- original bytes in the blob store (blob_key); the index row is written only
-- after the blob, so an indexed instance always has its file.

ALTER TABLE organizations ADD COLUMN dicom_ae_title TEXT;
-- Existing organizations get `LB` + 14 hex digits of their id's random part.
UPDATE organizations SET dicom_ae_title = 'LB' || upper(substr(replace(id, '-', ''), 19, 14));
CREATE UNIQUE INDEX organizations_dicom_ae_title ON organizations (dicom_ae_title);

-- Allowed senders; an organization with none takes any sender to its title.
CREATE TABLE dicom_peers (
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    id                TEXT NOT NULL,
    calling_ae_title  TEXT,
    address           TEXT,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;

-- Patient and study attributes, as of the study's first instance; counts and
-- modalities follow every instance. `patient_name_search` is upper-cased for
-- PatientName's case-insensitive matching.
CREATE TABLE dicom_studies (
    org_id                    TEXT NOT NULL REFERENCES organizations (id),
    study_instance_uid        TEXT NOT NULL,
    patient_name              TEXT,
    patient_name_search       TEXT,
    patient_id                TEXT,
    patient_birth_date        TEXT,
    patient_sex               TEXT,
    study_date                TEXT,
    study_time                TEXT,
    accession_number          TEXT,
    referring_physician_name  TEXT,
    study_id                  TEXT,
    study_description         TEXT,
    -- Distinct series modalities, sorted, joined with `\` (DICOM's multi-value separator).
    modalities                TEXT NOT NULL DEFAULT '',
    series_count              INTEGER NOT NULL DEFAULT 0,
    instance_count            INTEGER NOT NULL DEFAULT 0,
    -- Patient- and study-level attributes as DICOM JSON, for includefield.
    attributes                TEXT NOT NULL DEFAULT '{}',
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    PRIMARY KEY (org_id, study_instance_uid)
) WITHOUT ROWID;
CREATE INDEX dicom_studies_newest ON dicom_studies (org_id, created_at);
CREATE INDEX dicom_studies_patient_id ON dicom_studies (org_id, patient_id);
CREATE INDEX dicom_studies_patient_name ON dicom_studies (org_id, patient_name_search);
CREATE INDEX dicom_studies_study_date ON dicom_studies (org_id, study_date);
CREATE INDEX dicom_studies_accession ON dicom_studies (org_id, accession_number);

CREATE TABLE dicom_series (
    org_id               TEXT NOT NULL REFERENCES organizations (id),
    series_instance_uid  TEXT NOT NULL,
    study_instance_uid   TEXT NOT NULL,
    modality             TEXT,
    series_number        INTEGER,
    series_description   TEXT,
    series_date          TEXT,
    series_time          TEXT,
    instance_count       INTEGER NOT NULL DEFAULT 0,
    attributes           TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (org_id, series_instance_uid),
    FOREIGN KEY (org_id, study_instance_uid) REFERENCES dicom_studies (org_id, study_instance_uid)
) WITHOUT ROWID;
CREATE INDEX dicom_series_study ON dicom_series (org_id, study_instance_uid, series_number);

CREATE TABLE dicom_instances (
    org_id               TEXT NOT NULL REFERENCES organizations (id),
    sop_instance_uid     TEXT NOT NULL,
    series_instance_uid  TEXT NOT NULL,
    study_instance_uid   TEXT NOT NULL,
    sop_class_uid        TEXT NOT NULL,
    instance_number      INTEGER,
    pixel_rows           INTEGER,
    pixel_columns        INTEGER,
    bits_allocated       INTEGER,
    number_of_frames     INTEGER,
    transfer_syntax_uid  TEXT NOT NULL,
    -- The stored Part 10 file's size, and the SHA-256 of its data set (the
    -- bytes after the file meta), which decides "the same instance again".
    size_bytes           INTEGER NOT NULL,
    sha256               TEXT NOT NULL,
    blob_key             TEXT NOT NULL,
    -- Where the Pixel Data value starts in the file and its length (native
    -- pixel data), and per frame its fragments' [offset, length] (encapsulated).
    pixel_data_offset    INTEGER,
    pixel_data_length    INTEGER,
    frames               TEXT,
    -- The instance as DICOM JSON without Pixel Data; large binary values are
    -- left out and named by `BulkDataURI` paths relative to the instance.
    metadata             TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (org_id, sop_instance_uid),
    FOREIGN KEY (org_id, series_instance_uid) REFERENCES dicom_series (org_id, series_instance_uid)
) WITHOUT ROWID;
CREATE INDEX dicom_instances_series ON dicom_instances (org_id, series_instance_uid, instance_number);
CREATE INDEX dicom_instances_study ON dicom_instances (org_id, study_instance_uid);
