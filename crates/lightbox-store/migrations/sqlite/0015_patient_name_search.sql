-- QIDO-RS PatientName `*x*` served by an index (BENCHMARKS.md "DICOMweb at
-- 1M studies"): an FTS5 table with the trigram tokenizer over the upper-cased
-- name, as 0004/0007 do for worklist descriptions. FTS5 rows need integer ids
-- and `dicom_studies` is WITHOUT ROWID, so `dicom_studies_name_keys` maps each
-- study to one: `created_at` (milliseconds) times 32,768 plus a sequence
-- number among studies created in the same millisecond. Rowid order is thus
-- newest-first order but within one millisecond; the store reads on past the
-- page while the millisecond lasts and sorts that (`qido.rs`). Triggers keep
-- both tables in step with `dicom_studies`; the store still checks each match
-- with GLOB, so results are exactly those of the plain query.

CREATE TABLE dicom_studies_name_keys (
    search_id           INTEGER PRIMARY KEY,
    org_id              TEXT NOT NULL,
    study_instance_uid  TEXT NOT NULL,
    UNIQUE (org_id, study_instance_uid)
);

CREATE VIRTUAL TABLE dicom_studies_name_search USING fts5 (patient_name_search, tokenize = 'trigram');

INSERT INTO dicom_studies_name_keys (search_id, org_id, study_instance_uid)
    SELECT (created_at << 15)
           + row_number() OVER (PARTITION BY created_at ORDER BY org_id, study_instance_uid) - 1,
           org_id, study_instance_uid
    FROM dicom_studies
    ORDER BY 1;
INSERT INTO dicom_studies_name_search (rowid, patient_name_search)
    SELECT k.search_id, s.patient_name_search
    FROM dicom_studies_name_keys k
    JOIN dicom_studies s ON s.org_id = k.org_id AND s.study_instance_uid = k.study_instance_uid;

CREATE TRIGGER dicom_studies_name_insert AFTER INSERT ON dicom_studies BEGIN
    INSERT INTO dicom_studies_name_keys (search_id, org_id, study_instance_uid)
        SELECT CASE WHEN n.next < (new.created_at + 1) << 15 THEN n.next
                    ELSE RAISE(ABORT, 'more than 32768 DICOM studies created in one millisecond') END,
               new.org_id, new.study_instance_uid
        FROM (SELECT coalesce(
                  (SELECT max(search_id) + 1 FROM dicom_studies_name_keys
                   WHERE search_id BETWEEN new.created_at << 15 AND ((new.created_at + 1) << 15) - 1),
                  new.created_at << 15) AS next) n;
    INSERT INTO dicom_studies_name_search (rowid, patient_name_search) VALUES (
        (SELECT search_id FROM dicom_studies_name_keys
         WHERE org_id = new.org_id AND study_instance_uid = new.study_instance_uid),
        new.patient_name_search);
END;

CREATE TRIGGER dicom_studies_name_delete AFTER DELETE ON dicom_studies BEGIN
    DELETE FROM dicom_studies_name_search
    WHERE rowid = (SELECT search_id FROM dicom_studies_name_keys
                   WHERE org_id = old.org_id AND study_instance_uid = old.study_instance_uid);
    DELETE FROM dicom_studies_name_keys
    WHERE org_id = old.org_id AND study_instance_uid = old.study_instance_uid;
END;

-- A changed name is re-indexed under the same key; a changed `created_at`
-- (never written after insert today) would move the study, so it is refused
-- rather than left out of order.
CREATE TRIGGER dicom_studies_name_update AFTER UPDATE OF patient_name_search ON dicom_studies BEGIN
    UPDATE dicom_studies_name_search SET patient_name_search = new.patient_name_search
    WHERE rowid = (SELECT search_id FROM dicom_studies_name_keys
                   WHERE org_id = new.org_id AND study_instance_uid = new.study_instance_uid);
END;

CREATE TRIGGER dicom_studies_created_at_fixed BEFORE UPDATE OF created_at ON dicom_studies
WHEN new.created_at IS NOT old.created_at BEGIN
    SELECT RAISE(ABORT, 'a DICOM study''s created_at does not change (its name search key follows it)');
END;
