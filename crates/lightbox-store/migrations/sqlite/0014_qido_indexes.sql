-- QIDO-RS at a million studies (lightbox-bench dicomweb, BENCHMARKS.md
-- "DICOMweb at 1M studies"). OHIF's study list asks for PatientName `*x*`,
-- a StudyDate range and ModalitiesInStudy, newest first, 101 at a time.
-- `*x*` can use no b-tree, and SQLite (built without STAT4) cannot tell a
-- rare name from a common one, so the plan is chosen once for both: walk the
-- StudyDate range in this index, which carries every column those filters
-- test, so rows that fail them are rejected inside the index and only the
-- page's matches are read from the table. (The PRIMARY KEY's
-- study_instance_uid is in every index entry of a WITHOUT ROWID table, so
-- the order's tie-break needs no lookup either.)
CREATE INDEX dicom_studies_date_match
    ON dicom_studies (org_id, study_date, patient_name_search, modalities, created_at);
