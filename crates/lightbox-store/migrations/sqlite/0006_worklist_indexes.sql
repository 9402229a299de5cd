-- A reader's own queue by severity ("my stat studies", with or without a
-- status): the assignee index alone makes such a page read every entry of the
-- assignee (~19,000 at 1M studies, 40 readers) to find the few of that
-- severity; with the severity in the key it reads only those. Covering, like
-- the filter indexes of 0004.
CREATE INDEX studies_by_assignee_severity
    ON studies (org_id, assigned_to, severity, id, viewer_status, is_cancelled);
