-- WADO-RS metadata of a 500-instance series cost ~6 ms of PostgreSQL CPU
-- (BENCHMARKS.md "DICOMweb at 1M studies", What changed), most of it
-- decompressing `metadata`: a row over ~2 KB (the TOAST threshold) has its
-- widest values compressed, so each instance's 2–10 KB of DICOM JSON was
-- stored pglz-compressed and inflated on every read. With the target at a
-- page, a row that fits in a heap page stays there as it is; larger rows are
-- still compressed and moved out of line as before.
ALTER TABLE dicom_instances SET (toast_tuple_target = 8160);

-- Rows already stored compressed that now fit are written again
-- (`|| ''` makes a new, uncompressed value; the same value would be kept as
-- it is).
UPDATE dicom_instances SET metadata = metadata || ''
WHERE pg_column_compression(metadata) IS NOT NULL AND octet_length(metadata) < 7000;

-- WADO's order (instance number, then UID) is the index's: no sort of
-- whole rows.
DROP INDEX dicom_instances_series;
CREATE INDEX dicom_instances_series
    ON dicom_instances (org_id, series_instance_uid, instance_number, sop_instance_uid);
