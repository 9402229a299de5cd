-- QIDO-RS at a million studies (lightbox-bench dicomweb, BENCHMARKS.md
-- "DICOMweb at 1M studies"). OHIF's study list asks for PatientName `*x*`,
-- a StudyDate range and ModalitiesInStudy, newest first, 101 at a time.
--
-- A trigram index answers `patient_name_search LIKE '%X%'` for needles of
-- three or more characters (pg_trgm, created by 0004; it is a trusted
-- extension, so the database owner may create it). Kept without GIN's
-- pending list, which every search would otherwise scan.
CREATE INDEX dicom_studies_patient_name_trgm ON dicom_studies
    USING gin (patient_name_search gin_trgm_ops) WITH (fastupdate = off);
-- Newest first ends with the Study Instance UID (a unique tie-break): with it
-- in the index, a page is a backward walk that stops after the page, not an
-- incremental sort.
DROP INDEX dicom_studies_newest;
CREATE INDEX dicom_studies_newest ON dicom_studies (org_id, created_at, study_instance_uid);
-- ModalitiesInStudy matches `'\' || modalities || '\'` with LIKE, an
-- expression PostgreSQL cannot estimate without statistics of its own: it
-- guessed 287 of 9,241 matches (200,000 studies, a year, CT or MR), walked the
-- StudyDate index and sorted them all (31 ms) instead of walking newest first
-- and stopping after the page (0.3 ms). Expression statistics (PostgreSQL 14+)
-- give it the few distinct modality sets and how common each is.
CREATE STATISTICS dicom_studies_modalities_wrapped ON (('\' || modalities || '\')) FROM dicom_studies;
ANALYZE dicom_studies;
