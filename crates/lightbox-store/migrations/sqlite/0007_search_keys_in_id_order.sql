-- Description searches walk the trigram index newest first and stop after a
-- page, instead of looking up and sorting every match (958 for a rare needle
-- at 1M studies: 3.5 of its ~4 ms). FTS5 returns matches in rowid order, so
-- the rowid (`search_id`) now follows the study id: the id's first 48 bits
-- (its UUIDv7 millisecond) times 32,768, plus a sequence number among ids
-- sharing those bits. Rowid order is thus id order but within one
-- millisecond; the store reads on past the page while the millisecond lasts
-- and sorts that (see `Store::newest_matches`).

-- Only the insert trigger changes: 0004's update and delete triggers find a
-- study's key by (org_id, study_id) and name the tables, which are remade
-- under the same names.
DROP TRIGGER studies_search_insert;
DROP TABLE studies_search;
DROP TABLE studies_search_keys;

-- The id's first 48 bits (12 hex digits after `stu_`); `search_prefix` in
-- studies.rs is the same in Rust.
CREATE VIEW study_search_prefixes AS SELECT org_id, id,
    ((instr('0123456789abcdef', substr(id, 5, 1)) - 1) << 44) |
    ((instr('0123456789abcdef', substr(id, 6, 1)) - 1) << 40) |
    ((instr('0123456789abcdef', substr(id, 7, 1)) - 1) << 36) |
    ((instr('0123456789abcdef', substr(id, 8, 1)) - 1) << 32) |
    ((instr('0123456789abcdef', substr(id, 9, 1)) - 1) << 28) |
    ((instr('0123456789abcdef', substr(id, 10, 1)) - 1) << 24) |
    ((instr('0123456789abcdef', substr(id, 11, 1)) - 1) << 20) |
    ((instr('0123456789abcdef', substr(id, 12, 1)) - 1) << 16) |
    ((instr('0123456789abcdef', substr(id, 13, 1)) - 1) << 12) |
    ((instr('0123456789abcdef', substr(id, 14, 1)) - 1) << 8) |
    ((instr('0123456789abcdef', substr(id, 15, 1)) - 1) << 4) |
    ((instr('0123456789abcdef', substr(id, 16, 1)) - 1) << 0) AS prefix
    FROM studies;

CREATE TABLE studies_search_keys (
    search_id  INTEGER PRIMARY KEY,
    org_id     TEXT NOT NULL,
    study_id   TEXT NOT NULL,
    UNIQUE (org_id, study_id)
);

CREATE VIRTUAL TABLE studies_search USING fts5 (description_search, tokenize = 'trigram');

INSERT INTO studies_search_keys (search_id, org_id, study_id)
    SELECT (prefix << 15) + row_number() OVER (PARTITION BY prefix ORDER BY id) - 1, org_id, id
    FROM study_search_prefixes
    ORDER BY 1;
INSERT INTO studies_search (rowid, description_search)
    SELECT k.search_id, s.description_search
    FROM studies_search_keys k JOIN studies s ON s.org_id = k.org_id AND s.id = k.study_id;

CREATE TRIGGER studies_search_insert AFTER INSERT ON studies BEGIN
    INSERT INTO studies_search_keys (search_id, org_id, study_id)
        SELECT CASE WHEN n.next < (n.prefix + 1) << 15 THEN n.next
                    ELSE RAISE(ABORT, 'more than 32768 study ids share their first 48 bits') END,
               new.org_id, new.id
        FROM (SELECT p.prefix, coalesce(
                  (SELECT max(search_id) + 1 FROM studies_search_keys
                   WHERE search_id BETWEEN p.prefix << 15 AND ((p.prefix + 1) << 15) - 1),
                  p.prefix << 15) AS next
              FROM study_search_prefixes p WHERE p.org_id = new.org_id AND p.id = new.id) n;
    INSERT INTO studies_search (rowid, description_search) VALUES (
        (SELECT search_id FROM studies_search_keys WHERE org_id = new.org_id AND study_id = new.id),
        new.description_search);
END;
