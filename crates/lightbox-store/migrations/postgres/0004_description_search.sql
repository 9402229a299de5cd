-- Description contains-match served by an index: a trigram GIN index over the
-- lowercased description answers `description_search LIKE '%needle%'` for
-- needles of three or more characters. pg_trgm is a trusted extension
-- (PostgreSQL 13+): a database owner may create it without superuser rights.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX studies_description_trgm ON studies USING gin (description_search gin_trgm_ops);
