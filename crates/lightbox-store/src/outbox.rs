//! The webhook outbox: one row per event per endpoint, written by
//! [`enqueue`] inside the transaction of the change it reports (an event
//! exists only if its change committed), and worked off by
//! `lightbox-webhooks`' worker.
//!
//! A worker claims due rows in one statement that also moves their
//! `next_attempt_at` forward by a lease and counts the attempt: a worker that
//! dies mid-send gives its rows back when the lease ends, with no sweeper, and
//! a row is retried unless it is explicitly recorded as delivered or dead.
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas claiming at
//! once take different rows; SQLite has one writer, so its `UPDATE …
//! RETURNING` is atomic as it is. Results are recorded only by the claim that
//! made the attempt (`attempts` must still match).

use crate::exec::Exec;
use crate::sql::Sql;
use crate::webhooks::{endpoint_from_row, WebhookEndpoint, ENDPOINT_COLUMNS};
use crate::{Dialect, Store, StoreError};
use lightbox_domain::study::{Severity, ViewerStatus};
use lightbox_domain::webhook::{
    envelope, subscribes, EventType, ImagesReceivedData, StudyFacts, WebhookEndpointId,
    WebhookEventId,
};
use lightbox_domain::{ApiKeyId, Error, OrgId, StudyId, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    Delivered,
    /// Every attempt failed, or the destination is refused.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Result<DeliveryStatus, Error> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "dead" => Ok(DeliveryStatus::Dead),
            _ => Err(Error::invalid(
                "status",
                format!("`{s}` is not a delivery status; expected pending, delivered or dead"),
            )),
        }
    }
}

/// One event for one endpoint, as `webhook-deliveries` shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub org_id: OrgId,
    pub id: WebhookEventId,
    pub endpoint_id: WebhookEndpointId,
    pub event_type: EventType,
    /// The exact bytes sent on every attempt.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A delivery a worker has claimed for one attempt (`attempt` counts it).
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub org_id: OrgId,
    pub id: WebhookEventId,
    pub endpoint_id: WebhookEndpointId,
    pub event_type: EventType,
    pub body: String,
    pub attempt: u32,
}

/// How an attempt ended, as the worker records it.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered {
        status: u16,
    },
    Retry {
        at: Timestamp,
        status: Option<u16>,
        error: String,
    },
    Dead {
        status: Option<u16>,
        error: String,
    },
}

const DELIVERY_COLUMNS: &str = "org_id, id, endpoint_id, event_type, body, status, attempts, \
     next_attempt_at, last_status, last_error, created_at, finished_at";

fn corrupt(e: Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let org: String = row.try_get("org_id")?;
    Ok(Delivery {
        org_id: OrgId::parse(&org).map_err(corrupt)?,
        id: WebhookEventId::from_trusted(row.try_get("id")?),
        endpoint_id: WebhookEndpointId::from_trusted(row.try_get("endpoint_id")?),
        event_type: EventType::parse(row.try_get("event_type")?).map_err(corrupt)?,
        body: row.try_get("body")?,
        status: DeliveryStatus::parse(row.try_get("status")?).map_err(corrupt)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(Timestamp::from_millis),
    })
}

/// Writes `events` for the organization's endpoints that want them, inside
/// the caller's transaction. An event about a study an API key created goes
/// to that key's endpoints when it has some for the type, else to the
/// organization's own (those without a key). Returns the rows written.
pub(crate) async fn enqueue<D: Serialize, E: Exec>(
    tx: &mut E,
    org_id: OrgId,
    api_key: Option<ApiKeyId>,
    events: &[(EventType, D)],
) -> Result<usize, StoreError> {
    let endpoints = enabled_endpoints(tx, org_id).await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let now = Timestamp::now().millis();
    let mut written = 0;
    for (event_type, data) in events {
        for endpoint in route(&endpoints, api_key, *event_type) {
            let id = WebhookEventId::generate();
            let sql = Sql::new(
                "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, event_type, body, status, \
                 attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
            )
            .arg(org_id.to_string())
            .arg(id.as_str())
            .arg(endpoint.id.as_str())
            .arg(event_type.as_str())
            .arg(envelope(&id, *event_type, data))
            .arg(DeliveryStatus::Pending.as_str())
            .arg(now);
            tx.execute(sql).await?;
            written += 1;
        }
    }
    Ok(written)
}

async fn enabled_endpoints<E: Exec>(
    tx: &mut E,
    org_id: OrgId,
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let sql = Sql::new(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND enabled = $2"
    ))
    .arg(org_id.to_string())
    .arg(true);
    tx.rows(sql, endpoint_from_row).await
}

/// How long a burst may keep pushing its event back, in quiet periods: a
/// modality that never pauses still gets an event this often.
const MAX_HOLD_QUIETS: u32 = 10;

/// Queues `study.images_received` for the organization's endpoints that want
/// it, held until `quiet` has passed without another instance of the study.
/// An endpoint that already has one held for this study (queued, not yet
/// attempted, not yet due) gets that one extended instead: its body is
/// rewritten with the study's counts now and its due time pushed back, at
/// most to `MAX_HOLD_QUIETS` quiet periods after it was queued. Once an
/// attempt has claimed it, its bytes are fixed and a new instance queues a
/// new event (the `attempts = 0` guard makes that race-free against the
/// claim). On PostgreSQL the caller has already updated the study's row in
/// `tx`, which serialises two ingests of one study.
pub(crate) async fn enqueue_images_received<E: Exec>(
    tx: &mut E,
    org_id: OrgId,
    api_key: Option<ApiKeyId>,
    data: ImagesReceivedData,
    quiet: std::time::Duration,
) -> Result<usize, StoreError> {
    let event_type = EventType::StudyImagesReceived;
    let endpoints = enabled_endpoints(tx, org_id).await?;
    let now = Timestamp::now().millis();
    let quiet_ms = quiet.as_millis() as i64;
    let mut written = 0;
    for endpoint in route(&endpoints, api_key, event_type) {
        let held = Sql::new(
            "SELECT id, body, created_at FROM webhook_deliveries WHERE org_id = $1 AND subject = $2 \
             AND endpoint_id = $3 AND event_type = $4 AND status = $5 AND attempts = 0 \
             AND next_attempt_at > $6",
        )
        .arg(org_id.to_string())
        .arg(&data.study_instance_uid)
        .arg(endpoint.id.as_str())
        .arg(event_type.as_str())
        .arg(DeliveryStatus::Pending.as_str())
        .arg(now);
        let held = tx
            .rows(held, |row| {
                Ok((
                    WebhookEventId::from_trusted(row.get("id")?),
                    row.get::<String>("body")?,
                    row.get::<i64>("created_at")?,
                ))
            })
            .await?;
        if let Some((id, body, created_at)) = held.into_iter().next() {
            let before = held_data(&body)?;
            let due = (now + quiet_ms).min(created_at + quiet_ms * i64::from(MAX_HOLD_QUIETS));
            let extend = Sql::new(
                "UPDATE webhook_deliveries SET body = $1, next_attempt_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND attempts = 0 AND status = $5",
            )
            .arg(envelope(&id, event_type, &data.clone().extending(&before)))
            .arg(due.max(now))
            .arg(org_id.to_string())
            .arg(id.as_str())
            .arg(DeliveryStatus::Pending.as_str());
            if tx.execute(extend).await? == 1 {
                continue;
            }
        }
        let id = WebhookEventId::generate();
        let insert = Sql::new(
            "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, event_type, body, status, \
             attempts, next_attempt_at, created_at, subject) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
        )
        .arg(org_id.to_string())
        .arg(id.as_str())
        .arg(endpoint.id.as_str())
        .arg(event_type.as_str())
        .arg(envelope(&id, event_type, &data))
        .arg(DeliveryStatus::Pending.as_str())
        .arg(now + quiet_ms)
        .arg(now)
        .arg(&data.study_instance_uid);
        tx.execute(insert).await?;
        written += 1;
    }
    Ok(written)
}

/// The `data` of a held `study.images_received` body.
fn held_data(body: &str) -> Result<ImagesReceivedData, StoreError> {
    #[derive(serde::Deserialize)]
    struct Held {
        data: ImagesReceivedData,
    }
    serde_json::from_str::<Held>(body)
        .map(|h| h.data)
        .map_err(|e| StoreError::Corrupt(format!("a held study.images_received: {e}")))
}

/// The endpoints (of one organization, enabled) an event of type `t` goes
/// to: those of `api_key` that want it, else the organization's own (no key)
/// that want it.
pub(crate) fn route(
    endpoints: &[WebhookEndpoint],
    api_key: Option<ApiKeyId>,
    t: EventType,
) -> Vec<&WebhookEndpoint> {
    let wanted = |key: Option<ApiKeyId>| {
        endpoints
            .iter()
            .filter(|e| e.enabled && e.api_key_id == key && subscribes(&e.event_types, t))
            .collect::<Vec<_>>()
    };
    match api_key.map(|key| wanted(Some(key))) {
        Some(theirs) if !theirs.is_empty() => theirs,
        _ => wanted(None),
    }
}
/// A study's reported columns, read inside `tx` (locked on PostgreSQL, so
/// the before and after of one change are not interleaved with another's).
pub(crate) async fn study_facts(
    dialect: Dialect,
    tx: &mut Transaction<'static, Any>,
    org_id: OrgId,
    id: &StudyId,
) -> Result<Option<StudyFacts>, StoreError> {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT id, study_instance_uid, description, severity, viewer_status, is_cancelled, \
         assigned_to, express_customer_id, created_by_api_key_id FROM studies \
         WHERE org_id = $1 AND id = $2{lock}"
    ))
    .bind(org_id.to_string())
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StudyFacts {
        id: StudyId::from_trusted(row.try_get("id")?),
        study_instance_uid: row.try_get("study_instance_uid")?,
        description: row.try_get("description")?,
        severity: Severity::parse(row.try_get("severity")?).map_err(corrupt)?,
        viewer_status: ViewerStatus::parse(row.try_get("viewer_status")?).map_err(corrupt)?,
        is_cancelled: crate::flag(&row, "is_cancelled")?,
        assigned_to: row.try_get("assigned_to")?,
        express_customer_id: row.try_get("express_customer_id")?,
        created_by_api_key_id: row
            .try_get::<Option<String>, _>("created_by_api_key_id")?
            .map(|k| ApiKeyId::parse(&k))
            .transpose()
            .map_err(corrupt)?,
    }))
}

impl Store {
    /// Commits `tx` and, when it wrote deliveries, wakes this process's worker.
    pub(crate) async fn commit_with_events(
        &self,
        tx: Transaction<'static, Any>,
        queued: usize,
    ) -> Result<(), StoreError> {
        tx.commit().await?;
        self.events_queued(queued);
        Ok(())
    }

    /// Wakes this process's worker when a committed transaction wrote deliveries.
    pub(crate) fn events_queued(&self, queued: usize) {
        if queued > 0 {
            self.outbox_ready.notify_one();
        }
    }

    /// Resolves when this process has written or re-enabled deliveries since
    /// the last call (other replicas' are found by polling).
    pub async fn outbox_ready(&self) {
        self.outbox_ready.notified().await;
    }

    /// The endpoints a synchronous call of type `t` about something `api_key`
    /// made (or the organization, for `None`) goes to, by the outbox's routing.
    pub async fn webhook_destinations(
        &self,
        org_id: OrgId,
        api_key: Option<ApiKeyId>,
        t: EventType,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let endpoints = self.webhook_endpoints(org_id).await?;
        Ok(route(&endpoints, api_key, t).into_iter().cloned().collect())
    }

    /// Whether any delivery is due, read without the write lock (SQLite's
    /// single writer is not taken every poll when there is nothing to send).
    pub async fn deliveries_due(&self) -> Result<bool, StoreError> {
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries \
             WHERE status = $1 AND next_attempt_at <= $2 LIMIT 1) due",
        )
        .bind(DeliveryStatus::Pending.as_str())
        .bind(Timestamp::now().millis())
        .fetch_one(&self.read)
        .await?;
        Ok(due > 0)
    }

    /// Claims up to `limit` due deliveries of enabled endpoints for one
    /// attempt each, leasing them until `lease_until`.
    pub async fn claim_deliveries(
        &self,
        limit: u32,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE OF w SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE (org_id, id) IN (SELECT w.org_id, w.id FROM webhook_deliveries w \
             JOIN webhook_endpoints e ON e.org_id = w.org_id AND e.id = w.endpoint_id \
             WHERE w.status = $2 AND w.next_attempt_at <= $3 AND e.enabled = $4 \
             ORDER BY w.next_attempt_at LIMIT $5{skip_locked}) \
             RETURNING org_id, id, endpoint_id, event_type, body, attempts"
        ))
        .bind(lease_until.millis())
        .bind(DeliveryStatus::Pending.as_str())
        .bind(Timestamp::now().millis())
        .bind(true)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|row| {
                let org: String = row.try_get("org_id")?;
                Ok(ClaimedDelivery {
                    org_id: OrgId::parse(&org).map_err(corrupt)?,
                    id: WebhookEventId::from_trusted(row.try_get("id")?),
                    endpoint_id: WebhookEndpointId::from_trusted(row.try_get("endpoint_id")?),
                    event_type: EventType::parse(row.try_get("event_type")?).map_err(corrupt)?,
                    body: row.try_get("body")?,
                    attempt: row.try_get::<i64, _>("attempts")? as u32,
                })
            })
            .collect()
    }

    /// Records the outcome of `claimed`'s attempt; false when the claim had
    /// lapsed (another worker has the row now, or it was redelivered).
    pub async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        result: &AttemptResult,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now().millis();
        let (status, next, http, error, finished) = match result {
            AttemptResult::Delivered { status } => (
                DeliveryStatus::Delivered,
                now,
                Some(*status),
                None,
                Some(now),
            ),
            AttemptResult::Retry { at, status, error } => (
                DeliveryStatus::Pending,
                at.millis(),
                *status,
                Some(error.as_str()),
                None,
            ),
            AttemptResult::Dead { status, error } => (
                DeliveryStatus::Dead,
                now,
                *status,
                Some(error.as_str()),
                Some(now),
            ),
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, last_status = $3, \
             last_error = $4, finished_at = $5 \
             WHERE org_id = $6 AND id = $7 AND attempts = $8 AND status = $9",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(http.map(i64::from))
        .bind(error)
        .bind(finished)
        .bind(claimed.org_id.to_string())
        .bind(claimed.id.as_str())
        .bind(i64::from(claimed.attempt))
        .bind(DeliveryStatus::Pending.as_str())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The organization's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        org_id: OrgId,
        status: Option<DeliveryStatus>,
        endpoint: Option<&WebhookEndpointId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut sql = crate::sql::Sql::new(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = "
        ));
        sql.bind(org_id.to_string());
        if let Some(status) = status {
            sql.push(" AND status = ").bind(status.as_str());
        }
        if let Some(endpoint) = endpoint {
            sql.push(" AND endpoint_id = ").bind(endpoint.as_str());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit.clamp(1, 1000)));
        let rows = sql.query().fetch_all(&self.read).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub async fn delivery(
        &self,
        org_id: OrgId,
        id: &WebhookEventId,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id.to_string())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Sends a delivery again, same id and bytes, on a fresh schedule.
    pub async fn redeliver(&self, org_id: OrgId, id: &WebhookEventId) -> Result<(), Error> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = 0, next_attempt_at = $2, \
             finished_at = NULL WHERE org_id = $3 AND id = $4",
        )
        .bind(DeliveryStatus::Pending.as_str())
        .bind(Timestamp::now().millis())
        .bind(org_id.to_string())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "no webhook delivery {id} in this organization"
            )));
        }
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Deletes delivered and dead deliveries finished before `before`, in
    /// batches (their `next_attempt_at` is the time they finished, so the due
    /// index finds them); returns how many went.
    pub async fn purge_deliveries(&self, before: Timestamp) -> Result<u64, StoreError> {
        const BATCH: i64 = 1000;
        let mut purged = 0;
        for status in [DeliveryStatus::Delivered, DeliveryStatus::Dead] {
            loop {
                let done = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE (org_id, id) IN (SELECT org_id, id \
                     FROM webhook_deliveries WHERE status = $1 AND next_attempt_at < $2 LIMIT $3)",
                )
                .bind(status.as_str())
                .bind(before.millis())
                .bind(BATCH)
                .execute(&self.write)
                .await?;
                purged += done.rows_affected();
                if done.rows_affected() < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }

    /// Deliveries waiting, in the whole database (for `/metrics`).
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE status = $1")
                .bind(DeliveryStatus::Pending.as_str())
                .fetch_one(&self.read)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(key: Option<ApiKeyId>, types: &[EventType], enabled: bool) -> WebhookEndpoint {
        WebhookEndpoint {
            org_id: OrgId::generate(),
            id: WebhookEndpointId::generate(),
            api_key_id: key,
            url: "https://example.com/".into(),
            event_types: types.to_vec(),
            secret_sealed: String::new(),
            previous_secret: None,
            enabled,
            disabled_reason: None,
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn an_event_goes_to_its_keys_endpoints_else_the_organizations() {
        let (key, other_key) = (ApiKeyId::generate(), ApiKeyId::generate());
        let org_all = endpoint(None, &[], true);
        let keyed_created = endpoint(Some(key), &[EventType::StudyCreated], true);
        let other_keyed = endpoint(Some(other_key), &[], true);
        let disabled = endpoint(None, &[], false);
        let all = [
            org_all.clone(),
            keyed_created.clone(),
            other_keyed.clone(),
            disabled,
        ];
        let ids = |t, k| {
            route(&all, k, t)
                .into_iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(EventType::StudyCreated, Some(key)),
            [keyed_created.id.as_str()]
        );
        // The key's endpoint does not want it: the organization's does.
        assert_eq!(
            ids(EventType::StudyUpdated, Some(key)),
            [org_all.id.as_str()]
        );
        assert_eq!(ids(EventType::ImageUploaded, None), [org_all.id.as_str()]);
        assert_eq!(
            ids(EventType::StudyUpdated, Some(other_key)),
            [other_keyed.id.as_str()]
        );
    }
}
