-- QIDO-RS study searches by PatientName `*x*` and a StudyDate range (OHIF's
-- study list) on PostgreSQL (BENCHMARKS.md, "Session 12"). A common name
-- (`*SMITH*`, ~4,400 studies at 1M) was found by ANDing its trigram matches
-- with a year of the StudyDate index: ~10 ms of PostgreSQL CPU a search.
-- This index keys each study's name trigrams by its study year
-- (`2026smi`), so the same search reads the name's trigrams within the
-- range's one to three years: a few hundred studies. The store adds the
-- condition beside the plain ones (`qido.rs`, NameYears), so the results
-- are the same, and only for names PostgreSQL's statistics call uncommon:
-- for a very common one, walking the newest studies is faster, and the
-- planner misjudges the keys' selectivity. A stored date that does not
-- start with four digits is keyed under `*`, which every such search also
-- reads.
--
-- The function is IMMUTABLE (an index expression must be): show_trgm is,
-- and the function names it by pg_trgm's schema, so that it resolves
-- whatever the search_path of the session evaluating it (maintenance
-- commands run with a restricted one).
DO $migration$
DECLARE
    trgm_schema name := (SELECT extnamespace::regnamespace::name FROM pg_extension WHERE extname = 'pg_trgm');
BEGIN
    EXECUTE format($function$
        CREATE FUNCTION dicom_name_year_trigrams(name text, study_date text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
            SELECT ARRAY(
                SELECT CASE WHEN study_date ~ '^[0-9]{4}' THEN left(study_date, 4) ELSE '*' END || t
                FROM unnest(%I.show_trgm(name)) t)
        $body$
    $function$, trgm_schema);
END
$migration$;

CREATE INDEX dicom_studies_name_year_trigrams ON dicom_studies
    USING gin (dicom_name_year_trigrams(patient_name_search, study_date)) WITH (fastupdate = off);
ANALYZE dicom_studies;
