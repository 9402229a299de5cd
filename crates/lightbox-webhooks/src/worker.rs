//! The outbox delivery worker: claim due deliveries, send each, record what
//! came of it. A delivery is retried unless it is recorded delivered or dead
//! (a crash between sending and recording sends it again after the lease;
//! receivers deduplicate by `webhook-id`).
//!
//! At most `concurrency` sends are in flight; each holds a semaphore permit.
//! On shutdown the worker stops claiming and waits (up to one send timeout)
//! for the permits to come back, as mini-redis waits for its connections.

use crate::seal::{destination, SecretKey};
use crate::send::{Outcome, Sender};
use lightbox_domain::audit::{ActorKind, AuditEvent, AuditEventId, Outcome as AuditOutcome};
use lightbox_domain::webhook::{jittered, RetrySchedule};
use lightbox_domain::Timestamp;
use lightbox_store::{AttemptResult, ClaimedDelivery, Flush, Store, WebhookEndpoint};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

const ATTEMPTS: &str = "lightbox_webhook_attempts_total";
const DEAD: &str = "lightbox_webhook_dead_total";
const DISABLED: &str = "lightbox_webhook_endpoints_disabled_total";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How often to look for due deliveries besides being woken (retries
    /// coming due, other replicas' and `redeliver`'s rows).
    pub poll: Duration,
    pub schedule: RetrySchedule,
    /// How long delivered and dead deliveries are kept (listable and
    /// redeliverable); `None` keeps them for ever.
    pub retention: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            poll: Duration::from_secs(1),
            schedule: RetrySchedule::default(),
            retention: Some(Duration::from_secs(30 * 86400)),
        }
    }
}

/// How often finished deliveries past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct Worker {
    store: Store,
    sender: Sender,
    key: SecretKey,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(store: Store, sender: Sender, key: SecretKey, config: WorkerConfig) -> Worker {
        Worker {
            store,
            sender,
            key,
            config,
        }
    }

    /// Runs until `shutdown` turns true, then lets in-flight sends finish.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        // Present from the start, so a scrape shows 0 rather than nothing.
        metrics::counter!(DEAD).increment(0);
        metrics::counter!(DISABLED).increment(0);
        tokio::spawn(Arc::new(self).run(shutdown))
    }

    /// How long a claim holds a delivery: the attempt, and time to record it.
    fn lease(&self) -> Duration {
        self.sender.config().timeout + Duration::from_secs(5)
    }

    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let concurrency = self.config.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut purged_at: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            if purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged_at = Some(tokio::time::Instant::now());
                self.purge().await;
            }
            let free = permits.available_permits();
            let mut claimed = Vec::new();
            if free > 0 && self.store.deliveries_due().await.unwrap_or(true) {
                let lease_until = Timestamp::from_millis(
                    Timestamp::now().millis() + self.lease().as_millis() as i64,
                );
                match self.store.claim_deliveries(free as u32, lease_until).await {
                    Ok(rows) => claimed = rows,
                    Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
                }
            }
            let full = !claimed.is_empty() && claimed.len() == free;
            for delivery in claimed {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.deliver(delivery).await;
                    drop(permit);
                });
            }
            if full {
                continue; // more may be due
            }
            tokio::select! {
                _ = self.store.outbox_ready() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
                changed = shutdown.changed() => {
                    // The server dropped its end without a word: stop too.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let drain = permits.acquire_many(concurrency as u32);
        if tokio::time::timeout(self.lease(), drain).await.is_err() {
            tracing::warn!("webhook sends still in flight at shutdown; their leases will lapse");
        }
    }

    async fn purge(&self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let before =
            Timestamp::from_millis(Timestamp::now().millis() - retention.as_millis() as i64);
        match self.store.purge_deliveries(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "purged finished webhook deliveries past retention"
            ),
            Err(e) => tracing::warn!(error = %e, "could not purge finished webhook deliveries"),
        }
    }

    async fn deliver(&self, delivery: ClaimedDelivery) {
        let endpoint = match self
            .store
            .webhook_endpoint(delivery.org_id, &delivery.endpoint_id)
            .await
        {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => return, // deleted with its deliveries
            Err(e) => {
                // The lease lapses and the delivery comes back.
                tracing::warn!(error = %e, delivery = %delivery.id, "could not load a webhook endpoint");
                return;
            }
        };
        let outcome = match destination(&self.key, &endpoint).map_err(|e| e.to_string()) {
            Ok(to) => {
                self.sender
                    .post(&to, delivery.id.as_str(), delivery.body.as_bytes())
                    .await
            }
            Err(error) => Outcome::Retry {
                status: None,
                after: None,
                error,
            },
        };
        let (label, result) = match outcome {
            Outcome::Delivered { status, body } if acknowledged(&body) => {
                ("delivered", AttemptResult::Delivered { status })
            }
            Outcome::Delivered { status, .. } => (
                "retry",
                self.retry(
                    &delivery,
                    Some(status),
                    None,
                    "the endpoint answered {\"success\": false}".into(),
                ),
            ),
            Outcome::Retry {
                status,
                after,
                error,
            } => ("retry", self.retry(&delivery, status, after, error)),
            Outcome::Gone => {
                self.disable_gone(&endpoint).await;
                let error = "410 Gone: the endpoint is disabled until enabled again".to_owned();
                ("gone", self.retry(&delivery, Some(410), None, error))
            }
            Outcome::Failed { error } => (
                "failed",
                AttemptResult::Dead {
                    status: None,
                    error,
                },
            ),
        };
        metrics::counter!(ATTEMPTS, "type" => delivery.event_type.as_str(), "outcome" => label)
            .increment(1);
        match self.store.record_attempt(&delivery, &result).await {
            Ok(true) => {}
            Ok(false) => return, // the claim lapsed; the row has moved on
            Err(e) => {
                tracing::warn!(error = %e, delivery = %delivery.id, "could not record a webhook attempt");
                return;
            }
        }
        if let AttemptResult::Dead { status, error } = &result {
            metrics::counter!(DEAD, "type" => delivery.event_type.as_str()).increment(1);
            tracing::warn!(delivery = %delivery.id, endpoint = %delivery.endpoint_id, error = %error, "webhook delivery is dead");
            self.audit(&delivery, "webhook.dead", status.unwrap_or(0))
                .await;
        }
    }

    /// The next attempt by the schedule (jittered, and no sooner than the
    /// endpoint's `Retry-After`), or dead after the last.
    fn retry(
        &self,
        delivery: &ClaimedDelivery,
        status: Option<u16>,
        after: Option<Duration>,
        error: String,
    ) -> AttemptResult {
        match self.config.schedule.next_attempt(delivery.attempt) {
            Some(delay) => {
                let delay = jittered(delay, rand::thread_rng().gen_range(-1.0..=1.0))
                    .max(after.unwrap_or_default());
                AttemptResult::Retry {
                    at: Timestamp::from_millis(
                        Timestamp::now().millis() + delay.as_millis() as i64,
                    ),
                    status,
                    error,
                }
            }
            None => AttemptResult::Dead {
                status,
                error: format!(
                    "{error} (attempt {} of {})",
                    delivery.attempt,
                    self.config.schedule.attempts()
                ),
            },
        }
    }

    async fn disable_gone(&self, endpoint: &WebhookEndpoint) {
        let reason = "the endpoint answered 410 Gone";
        match self
            .store
            .set_webhook_enabled(endpoint.org_id, &endpoint.id, false, Some(reason))
            .await
        {
            Ok(()) => {
                metrics::counter!(DISABLED).increment(1);
                tracing::warn!(endpoint = %endpoint.id, "webhook endpoint disabled: it answered 410 Gone");
                let event = audit_event(
                    endpoint.org_id,
                    "webhook.disable",
                    "webhook_endpoint",
                    endpoint.id.as_str(),
                    410,
                );
                if let Err(e) = self.store.append_audit_events(&[event], Flush::Now).await {
                    tracing::error!(error = %e, "audit event could not be stored");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %endpoint.id, "could not disable a webhook endpoint")
            }
        }
    }

    async fn audit(&self, delivery: &ClaimedDelivery, action: &str, status: u16) {
        let event = audit_event(
            delivery.org_id,
            action,
            "webhook_delivery",
            delivery.id.as_str(),
            status,
        );
        if let Err(e) = self.store.append_audit_events(&[event], Flush::Now).await {
            tracing::error!(error = %e, "audit event could not be stored");
        }
    }
}

fn audit_event(
    org_id: lightbox_domain::OrgId,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    status: u16,
) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        org_id,
        occurred_at: Timestamp::now(),
        actor_kind: ActorKind::Operator,
        actor_id: Some("webhook-worker".into()),
        action: action.into(),
        resource_type: Some(resource_type.into()),
        resource_id: Some(resource_id.into()),
        outcome: AuditOutcome::Error,
        status,
        client_ip: None,
        request_id: None,
    }
}

/// Any 2xx acknowledges an asynchronous event, except a JSON
/// `{"success": false}` (Avara's `report.delivered` answer, declined).
fn acknowledged(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("success").and_then(|s| s.as_bool()))
        != Some(false)
}

#[cfg(test)]
mod tests {
    use super::acknowledged;

    #[test]
    fn any_2xx_body_acknowledges_except_success_false() {
        assert!(acknowledged(b""));
        assert!(acknowledged(b"ok"));
        assert!(acknowledged(br#"{"success":true}"#));
        assert!(acknowledged(br#"{"received":1}"#));
        assert!(!acknowledged(br#"{"success":false}"#));
    }
}
