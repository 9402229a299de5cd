-- The description search walks one trigram's postings through the primary key,
-- newest first, and stops after a page (`postgres_trigram_walk_sql`). The planner
-- estimates a trigram's postings as the table's rows over its distinct trigrams;
-- where few trigrams are rare and each holds many postings (the bench's 1M
-- studies: 7 trigrams, ~950 postings each), reading the whole table and sorting
-- it looked cheaper than the walk, and a needle cost 1.2 ms of PostgreSQL instead
-- of 0.25 (BENCHMARKS.md, "Session 15"). Estimated at one posting per trigram,
-- the walk is the plan whatever the statistics. The count reads every posting
-- anyway; only its guess of how many groups it makes grows.
ALTER TABLE study_search_postings ALTER COLUMN trigram SET (n_distinct = -1);
ANALYZE study_search_postings;
