-- Description contains-match served by an index: an FTS5 table with the trigram
-- tokenizer over the lowercased description. FTS5 rows need integer ids and
-- `studies` is WITHOUT ROWID, so `studies_search_keys` maps each study to one.
-- Triggers keep both in step with `studies`; the store checks each match with
-- LIKE as well, so semantics stay exactly "lowercased description contains".

CREATE TABLE studies_search_keys (
    search_id  INTEGER PRIMARY KEY,
    org_id     TEXT NOT NULL,
    study_id   TEXT NOT NULL,
    UNIQUE (org_id, study_id)
);

CREATE VIRTUAL TABLE studies_search USING fts5 (description_search, tokenize = 'trigram');

INSERT INTO studies_search_keys (org_id, study_id) SELECT org_id, id FROM studies ORDER BY org_id, id;
INSERT INTO studies_search (rowid, description_search)
    SELECT k.search_id, s.description_search
    FROM studies s JOIN studies_search_keys k ON k.org_id = s.org_id AND k.study_id = s.id;

CREATE TRIGGER studies_search_insert AFTER INSERT ON studies BEGIN
    INSERT INTO studies_search_keys (org_id, study_id) VALUES (new.org_id, new.id);
    INSERT INTO studies_search (rowid, description_search) VALUES (
        (SELECT search_id FROM studies_search_keys WHERE org_id = new.org_id AND study_id = new.id),
        new.description_search);
END;

CREATE TRIGGER studies_search_update AFTER UPDATE OF description_search ON studies BEGIN
    UPDATE studies_search SET description_search = new.description_search
    WHERE rowid = (SELECT search_id FROM studies_search_keys WHERE org_id = new.org_id AND study_id = new.id);
END;

CREATE TRIGGER studies_search_delete AFTER DELETE ON studies BEGIN
    DELETE FROM studies_search
    WHERE rowid = (SELECT search_id FROM studies_search_keys WHERE org_id = old.org_id AND study_id = old.id);
    DELETE FROM studies_search_keys WHERE org_id = old.org_id AND study_id = old.id;
END;

-- The filter indexes also carry the small filter columns, so a listing with
-- several filters finds its page's ids in one index alone: on a WITHOUT ROWID
-- table SQLite otherwise reads the row of every entry it visits, including the
-- many a later filter rejects (see `list_studies`). Keys and order are as in 0001.
DROP INDEX studies_by_severity;
DROP INDEX studies_by_status;
DROP INDEX studies_by_cancelled;
DROP INDEX studies_by_assignee;
DROP INDEX studies_by_customer;
CREATE INDEX studies_by_severity  ON studies (org_id, severity, id, viewer_status, is_cancelled);
CREATE INDEX studies_by_status    ON studies (org_id, viewer_status, id, severity, is_cancelled);
CREATE INDEX studies_by_cancelled ON studies (org_id, is_cancelled, id, severity, viewer_status);
CREATE INDEX studies_by_assignee  ON studies (org_id, assigned_to, id, severity, viewer_status, is_cancelled);
CREATE INDEX studies_by_customer  ON studies (org_id, express_customer_id, id, severity, viewer_status, is_cancelled, assigned_to);
