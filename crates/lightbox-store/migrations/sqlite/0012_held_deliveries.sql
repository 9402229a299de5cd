-- Events held to coalesce a burst (issue 17: study.images_received): `subject`
-- names what the event is about (the Study Instance UID), so the next instance
-- of a burst finds the held, not yet attempted delivery and extends it instead
-- of queueing another.

ALTER TABLE webhook_deliveries ADD COLUMN subject TEXT;
CREATE INDEX webhook_deliveries_by_subject ON webhook_deliveries (org_id, subject, endpoint_id)
    WHERE subject IS NOT NULL;
