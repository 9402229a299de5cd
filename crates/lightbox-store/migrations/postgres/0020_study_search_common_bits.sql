-- The posting trigger of 0019, made cheap enough that writing a study costs
-- about what it did before 0019 (BENCHMARKS.md, "Session 14"). Per insert,
-- 0019's trigger called a SQL function that PostgreSQL cannot inline
-- (~55 µs: it builds an array through a subquery) and looked each trigram up
-- in `study_search_trigrams` (~35 µs more). Now it reads the trigrams
-- in its own statement and one row per organization: a bitmap of the
-- organization's common trigrams, one bit for each of the 36^3 possible
-- (`study_search_trigram_bit`). Measured in one session, 6 x 1,000 inserts
-- of a study with three rare trigrams: ~60-70 µs without the trigger,
-- ~155-165 with 0019's, ~95-110 with this one.
--
-- The bitmap is a copy of `common_since`, written only by the count
-- (`Store::count_search_trigrams`, which marks trigrams common) in the same
-- transaction as the marks, so a bit is never set for a trigram that is not
-- marked: a trigram the walk may choose still lists every study holding it.

-- A listed trigram (three of `a-z0-9`, as 0019 keeps them) as a number in
-- 0 .. 46,655. Inlined by the planner (one expression).
CREATE FUNCTION study_search_trigram_bit(trigram text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
    SELECT ((strpos('0123456789abcdefghijklmnopqrstuvwxyz', substr(trigram, 1, 1)) - 1) * 36
            + strpos('0123456789abcdefghijklmnopqrstuvwxyz', substr(trigram, 2, 1)) - 1) * 36
           + strpos('0123456789abcdefghijklmnopqrstuvwxyz', substr(trigram, 3, 1)) - 1
$body$;

-- The bitmap of `trigrams` (46,656 bits, 5,832 bytes); others are ignored.
CREATE FUNCTION study_search_common_bits(trigrams text[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $body$
DECLARE
    bits bytea := decode(repeat('00', 5832), 'hex');
    trigram text;
BEGIN
    FOREACH trigram IN ARRAY trigrams LOOP
        IF trigram ~ '^[a-z0-9]{3}$' THEN
            bits := set_bit(bits, study_search_trigram_bit(trigram), 1);
        END IF;
    END LOOP;
    RETURN bits;
END
$body$;

-- An organization has a row once it has a common trigram.
CREATE TABLE study_search_common (
    org_id    TEXT PRIMARY KEY REFERENCES organizations (id),
    trigrams  BYTEA NOT NULL
);
-- Kept in the row, uncompressed (it fits a page): each insert reads its bits
-- as they lie, where a compressed or TOASTed value is unpacked per bit read.
ALTER TABLE study_search_common ALTER COLUMN trigrams SET STORAGE PLAIN;

INSERT INTO study_search_common (org_id, trigrams)
SELECT org_id, study_search_common_bits(array_agg(trigram))
FROM study_search_trigrams
WHERE common_since IS NOT NULL
GROUP BY org_id;

-- show_trgm named by pg_trgm's schema, as in 0018 and 0019. Same postings as
-- 0019's function: the description's trigrams of three `a-z0-9`, each
-- unless it is common in the organization. A delete needs no such filter:
-- it removes whichever of the old description's trigrams are listed.
DO $migration$
DECLARE
    trgm_schema name := (SELECT extnamespace::regnamespace::name FROM pg_extension WHERE extname = 'pg_trgm');
BEGIN
    EXECUTE format($function$
        CREATE OR REPLACE FUNCTION study_search_postings_write() RETURNS trigger
        LANGUAGE plpgsql AS $body$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                DELETE FROM study_search_postings
                WHERE org_id = OLD.org_id
                  AND trigram = ANY (%1$I.show_trgm(OLD.description_search))
                  AND study_id = OLD.id;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO study_search_postings (org_id, trigram, study_id)
                SELECT NEW.org_id, t, NEW.id
                FROM unnest(%1$I.show_trgm(NEW.description_search)) t
                WHERE t ~ '^[a-z0-9]{3}$'
                  AND coalesce(get_bit((SELECT c.trigrams FROM study_search_common c
                                        WHERE c.org_id = NEW.org_id),
                                       study_search_trigram_bit(t)), 0) = 0;
            END IF;
            RETURN NULL;
        END
        $body$
    $function$, trgm_schema);
END
$migration$;
