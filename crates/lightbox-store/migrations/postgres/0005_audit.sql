-- The audit trail. Append-only: the triggers refuse any change, removal or truncation.

CREATE TABLE audit_events (
    org_id         TEXT NOT NULL,
    id             TEXT NOT NULL,
    occurred_at    BIGINT NOT NULL,
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
);
-- "Who touched this record?"
CREATE INDEX audit_events_by_resource ON audit_events (org_id, resource_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
