-- Study ids ("stu_" + 32 hex digits) and Study Instance UIDs (digits and dots)
-- are ASCII keys compared byte by byte. Under the database's default collation
-- (a libc locale such as C.UTF-8 or en_US.UTF-8) every comparison of them in an
-- index, a sort or a cursor bound goes through strcoll; with COLLATE "C" it is
-- a memcmp. They order and match the same either way (one shape, lowercase hex),
-- so cursors and pages are unchanged. Measured at 1M studies (BENCHMARKS.md): a
-- rare-needle page, which sorts its ~1,000 matches by id, 2.6 -> 2.4 ms of
-- PostgreSQL time. The table is not rewritten; the indexes holding these
-- columns are rebuilt once (~8 s at 1M studies).
ALTER TABLE studies
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN study_instance_uid TYPE TEXT COLLATE "C";
-- ALTER ... TYPE drops the two columns' statistics, and autovacuum analyzes
-- again only after many changes: without them the planner walked the primary
-- key for filtered pages (expressCustomerId 6 -> 486 ms p99 at 1M). ~1 s.
ANALYZE studies;
