-- A reader's own queue by severity ("my stat studies", with or without a
-- status): the assignee index alone makes such a page read every entry of the
-- assignee (~19,000 at 1M studies, 40 readers) to find the few of that
-- severity; with the severity in the key it reads only those. Covering, like
-- the filter indexes of 0004. Partial here: PostgreSQL's planner otherwise
-- also took it for assignee filters without a severity and sorted all of the
-- assignee's studies; it can use this one only when the query names an urgent
-- severity (normal is 85 % of studies, found fast enough by the assignee index).
CREATE INDEX studies_by_assignee_severity
    ON studies (org_id, assigned_to, severity, id) INCLUDE (viewer_status, is_cancelled)
    WHERE severity <> 'normal';

-- Trigram searches stay as fast after inserts as after a vacuum: with GIN's
-- default fastupdate, new studies wait in a pending list that every search
-- scans in full until (auto)vacuum merges it, so a rare-needle search slowed
-- from 0.3 to 2.8 ms of index time after a few thousand creates and sped up
-- again at the next vacuum. Each insert now updates the index itself.
ALTER INDEX studies_description_trgm SET (fastupdate = off);
SELECT gin_clean_pending_list('studies_description_trgm'::regclass);
