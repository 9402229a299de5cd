-- Description contains-match served by an index: a trigram GIN index over the
-- lowercased description answers `description_search LIKE '%needle%'` for
-- needles of three or more characters. pg_trgm is a trusted extension
-- (PostgreSQL 13+): a database owner may create it without superuser rights.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX studies_description_trgm ON studies USING gin (description_search gin_trgm_ops);

-- The filter indexes also carry the small filter columns, so a listing with
-- several filters finds its page's ids by an index-only scan instead of
-- fetching a heap row for every entry a later filter rejects (see
-- `list_studies`). Keys and order are as in 0001.
DROP INDEX studies_by_severity;
DROP INDEX studies_by_status;
DROP INDEX studies_by_cancelled;
DROP INDEX studies_by_assignee;
DROP INDEX studies_by_customer;
CREATE INDEX studies_by_severity  ON studies (org_id, severity, id) INCLUDE (viewer_status, is_cancelled);
CREATE INDEX studies_by_status    ON studies (org_id, viewer_status, id) INCLUDE (severity, is_cancelled);
CREATE INDEX studies_by_cancelled ON studies (org_id, is_cancelled, id) INCLUDE (severity, viewer_status);
CREATE INDEX studies_by_assignee  ON studies (org_id, assigned_to, id) INCLUDE (severity, viewer_status, is_cancelled);
CREATE INDEX studies_by_customer  ON studies (org_id, express_customer_id, id) INCLUDE (severity, viewer_status, is_cancelled, assigned_to);
