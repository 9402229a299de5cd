-- The audit trail, in a file of its own (see the store's module docs). Append-only:
-- the triggers refuse any change or removal. Same table as main's 0005, which
-- the store moves here and drops.

CREATE TABLE audit_events (
    org_id         TEXT NOT NULL,
    id             TEXT NOT NULL,
    occurred_at    INTEGER NOT NULL,
    actor_type     TEXT NOT NULL,
    actor_id       TEXT,
    action         TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        TEXT NOT NULL,
    status         INTEGER NOT NULL,
    client_ip      TEXT,
    request_id     TEXT,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
-- "Who touched this record?"
CREATE INDEX audit_events_by_resource ON audit_events (org_id, resource_id, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
