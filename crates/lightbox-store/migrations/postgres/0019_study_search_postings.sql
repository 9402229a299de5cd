-- The worklist's description search ("contains", `description_search LIKE
-- '%needle%'`) for needles that are rare in their organization
-- (BENCHMARKS.md, "Session 13"). The trigram GIN index of 0004 finds every
-- match of such a needle in no order; PostgreSQL then reads each match's row
-- (~1,000 heap pages for `arthrogram` at 1M studies) and sorts them all for a
-- page of 100. Here each study is listed under its organization's *rare*
-- trigrams, by id, so the store walks one rare trigram's studies newest first
-- and stops after a page (`studies.rs`, `postgres_trigram_walk_sql`).
--
-- A trigram is common in an organization once more than 2,000 of its studies
-- hold it (`COMMON_TRIGRAM_STUDIES` in `search_trigrams.rs`, the same
-- number): from then on it gets no postings, the ones it had are dropped, and
-- it stays common. Only the counting, done in the background
-- (`Store::count_search_trigrams`), marks trigrams common; every write of a
-- description lists the study under each of its trigrams not yet marked, so
-- a trigram that is not marked common lists every study that holds it.
-- Only lowercase ASCII letter and digit trigrams are listed: the store looks
-- up only those (from the needle's ASCII runs), and any description
-- containing the needle holds them.

CREATE TABLE study_search_trigrams (
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    trigram       TEXT COLLATE "C" NOT NULL,
    -- Postings at the last count; a hint for choosing the rarest trigram.
    studies       BIGINT NOT NULL,
    -- When the trigram was found common (ms); NULL while it is listed.
    common_since  BIGINT,
    PRIMARY KEY (org_id, trigram)
);

CREATE TABLE study_search_postings (
    org_id    TEXT NOT NULL,
    trigram   TEXT COLLATE "C" NOT NULL,
    study_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, trigram, study_id)
);

-- show_trgm named by pg_trgm's schema, as in 0018.
DO $migration$
DECLARE
    trgm_schema name := (SELECT extnamespace::regnamespace::name FROM pg_extension WHERE extname = 'pg_trgm');
BEGIN
    EXECUTE format($function$
        CREATE FUNCTION study_search_trigrams_of(description_search text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
            SELECT ARRAY(SELECT t FROM unnest(%I.show_trgm(description_search)) t
                         WHERE t ~ '^[a-z0-9]{3}$')
        $body$
    $function$, trgm_schema);
END
$migration$;

CREATE FUNCTION study_search_postings_write() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM study_search_postings
        WHERE org_id = OLD.org_id
          AND trigram = ANY (study_search_trigrams_of(OLD.description_search))
          AND study_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO study_search_postings (org_id, trigram, study_id)
        SELECT NEW.org_id, t, NEW.id
        FROM unnest(study_search_trigrams_of(NEW.description_search)) t
        WHERE NOT EXISTS (
            SELECT 1 FROM study_search_trigrams c
            WHERE c.org_id = NEW.org_id AND c.trigram = t AND c.common_since IS NOT NULL);
    END IF;
    RETURN NULL;
END
$body$;

CREATE TRIGGER studies_search_postings_insert AFTER INSERT ON studies
    FOR EACH ROW EXECUTE FUNCTION study_search_postings_write();
CREATE TRIGGER studies_search_postings_update AFTER UPDATE OF description_search ON studies
    FOR EACH ROW WHEN (OLD.description_search IS DISTINCT FROM NEW.description_search)
    EXECUTE FUNCTION study_search_postings_write();
CREATE TRIGGER studies_search_postings_delete AFTER DELETE ON studies
    FOR EACH ROW EXECUTE FUNCTION study_search_postings_write();

-- The studies already stored: count every trigram once, mark the common
-- ones, list the rest (~6 s at 1M studies; docs/operations.md).
INSERT INTO study_search_trigrams (org_id, trigram, studies, common_since)
SELECT org_id, t, count(*),
       CASE WHEN count(*) > 2000 THEN (extract(epoch FROM now()) * 1000)::bigint END
FROM studies, unnest(study_search_trigrams_of(description_search)) t
GROUP BY org_id, t;
-- Without statistics the planner probed the new table row by row for each of
-- the 12.6M trigrams of 1M studies (~2 minutes instead of seconds).
ANALYZE study_search_trigrams;

INSERT INTO study_search_postings (org_id, trigram, study_id)
SELECT s.org_id, t, s.id
FROM studies s, unnest(study_search_trigrams_of(s.description_search)) t
WHERE EXISTS (SELECT 1 FROM study_search_trigrams c
              WHERE c.org_id = s.org_id AND c.trigram = t AND c.common_since IS NULL);

ANALYZE study_search_postings;
