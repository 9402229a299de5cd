-- WADO-RS metadata of a 500-instance series read ~7,800 pages one `pread`
-- at a time (BENCHMARKS.md "DICOMweb at 1M studies", What changed):
-- `dicom_instances` was WITHOUT ROWID, so each whole row, with its 2–10 KB
-- of DICOM JSON, was a key of the primary-key b-tree. Interior pages hold
-- whole keys, so each key spilled into overflow pages, and every look-up by
-- key (one per row found through `dicom_instances_series`) compared against
-- ~15 such keys, reading their overflow chains (SQLite reads overflow pages
-- past its cache). As an ordinary rowid table the keys are small index
-- entries, interior pages hold rowids, and a row is read once, in place.
--
-- The table is copied in series order, so a series' rows lie together. The
-- series index ends with the SOP Instance UID: WADO's order (instance
-- number, then UID) is the index's, with no sort of whole rows.

CREATE TABLE dicom_instances_0016 (
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
);

INSERT INTO dicom_instances_0016 (org_id, sop_instance_uid, series_instance_uid,
    study_instance_uid, sop_class_uid, instance_number, pixel_rows, pixel_columns,
    bits_allocated, number_of_frames, transfer_syntax_uid, size_bytes, sha256, blob_key,
    pixel_data_offset, pixel_data_length, frames, metadata, created_at)
SELECT org_id, sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid,
    instance_number, pixel_rows, pixel_columns, bits_allocated, number_of_frames,
    transfer_syntax_uid, size_bytes, sha256, blob_key, pixel_data_offset, pixel_data_length,
    frames, metadata, created_at
FROM dicom_instances
ORDER BY org_id, series_instance_uid, instance_number, sop_instance_uid;

DROP TABLE dicom_instances;
ALTER TABLE dicom_instances_0016 RENAME TO dicom_instances;
CREATE INDEX dicom_instances_series
    ON dicom_instances (org_id, series_instance_uid, instance_number, sop_instance_uid);
CREATE INDEX dicom_instances_study ON dicom_instances (org_id, study_instance_uid);
-- The dropped table's statistics went with it.
ANALYZE dicom_instances;
