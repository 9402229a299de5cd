-- Webhooks (issue 17): partners' endpoints and the durable outbox of events.
-- Times are BIGINT ms (UTC).

CREATE TABLE webhook_endpoints (
    org_id                 TEXT NOT NULL REFERENCES organizations (id),
    id                     TEXT NOT NULL,
    -- Set: this endpoint takes the events of studies this API key created.
    api_key_id             TEXT REFERENCES api_keys (id),
    url                    TEXT NOT NULL,
    -- Comma-separated event types; empty means every type.
    event_types            TEXT NOT NULL,
    -- The signing secret, sealed with the configured webhook secret key; never in clear.
    secret_sealed          TEXT NOT NULL,
    -- The secret before the last rotation, still signing until previous_until.
    previous_secret_sealed TEXT,
    previous_until         BIGINT,
    enabled                BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason        TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

-- One row per event per endpoint. `body` is the exact signed bytes. A pending
-- row is due at next_attempt_at; a claim moves that forward by the lease, so a
-- worker that dies mid-send gives the row back without a sweeper.
CREATE TABLE webhook_deliveries (
    org_id           TEXT NOT NULL,
    id               TEXT COLLATE "C" NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (org_id, endpoint_id, id);
