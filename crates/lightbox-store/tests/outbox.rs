//! The webhook outbox as the delivery worker uses it, on SQLite and
//! PostgreSQL: a study change writes its event, a claim leases it, a lapsed
//! lease (a crashed worker) gives it back, only the current claim may record
//! the outcome, and finished deliveries are purged after their retention.

use lightbox_domain::study::{Actor, NewStudy, Severity};
use lightbox_domain::webhook::{EventType, WebhookEndpointId};
use lightbox_domain::Timestamp;
use lightbox_store::{
    AttemptResult, DeliveryStatus, NewOrg, NewWebhookEndpoint, Store, StoreOptions,
};

mod support;
use support::ThrowawayPostgres;

fn later(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() + ms)
}

async fn the_outbox_leases_retries_and_purges(store: &Store) {
    let org = |name: &str| NewOrg {
        name: name.into(),
        owner_email: "owner@example.org".into(),
    };
    let acme = store.create_org(&org("Acme")).await.unwrap();
    let other = store.create_org(&org("Other")).await.unwrap();
    let endpoint = store
        .create_webhook_endpoint(
            acme.org_id,
            &NewWebhookEndpoint {
                id: WebhookEndpointId::generate(),
                api_key_id: None,
                url: "https://hooks.example.com/".into(),
                event_types: vec![EventType::StudyCreated],
                secret_sealed: "x1:sealed".into(),
            },
        )
        .await
        .unwrap();
    let study = store
        .create_study(
            acme.org_id,
            &Actor::ApiKey(acme.api_key_id),
            &NewStudy {
                study_instance_uid: "1.2.840.99.1".into(),
                description: "Chest CT".into(),
                severity: Severity::High,
                assigned_to: None,
                express_customer_id: None,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();

    let listed = store
        .list_deliveries(acme.org_id, None, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, DeliveryStatus::Pending);
    assert_eq!(listed[0].endpoint_id, endpoint.id);
    assert!(
        listed[0].body.contains(study.id.as_str()),
        "{}",
        listed[0].body
    );
    assert!(store
        .list_deliveries(other.org_id, None, None, 10)
        .await
        .unwrap()
        .is_empty());

    // A worker claims it and dies: the lease lapses and the row comes back.
    let crashed = store.claim_deliveries(10, later(-1)).await.unwrap();
    assert_eq!(crashed.len(), 1);
    assert_eq!(crashed[0].attempt, 1);
    let claimed = store.claim_deliveries(10, later(60_000)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 2);
    assert!(store
        .claim_deliveries(10, later(60_000))
        .await
        .unwrap()
        .is_empty());
    assert!(!store.deliveries_due().await.unwrap());

    // Only the current claim records the outcome.
    let delivered = AttemptResult::Delivered { status: 204 };
    assert!(!store.record_attempt(&crashed[0], &delivered).await.unwrap());
    let retry = AttemptResult::Retry {
        at: later(-1),
        status: Some(500),
        error: "HTTP 500".into(),
    };
    assert!(store.record_attempt(&claimed[0], &retry).await.unwrap());
    assert!(store.deliveries_due().await.unwrap());
    let again = store.claim_deliveries(10, later(60_000)).await.unwrap();
    assert_eq!(again[0].attempt, 3);
    assert!(store.record_attempt(&again[0], &delivered).await.unwrap());
    let done = store
        .delivery(acme.org_id, &again[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status, done.attempts, done.last_status),
        (DeliveryStatus::Delivered, 3, Some(204))
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);

    // A disabled endpoint's deliveries wait.
    store.redeliver(acme.org_id, &done.id).await.unwrap();
    store
        .set_webhook_enabled(acme.org_id, &endpoint.id, false, Some("test"))
        .await
        .unwrap();
    assert!(store
        .claim_deliveries(10, later(60_000))
        .await
        .unwrap()
        .is_empty());
    store
        .set_webhook_enabled(acme.org_id, &endpoint.id, true, None)
        .await
        .unwrap();
    let resent = store.claim_deliveries(10, later(60_000)).await.unwrap();
    assert_eq!((resent.len(), resent[0].attempt), (1, 1));
    assert!(store.record_attempt(&resent[0], &delivered).await.unwrap());

    // Retention: kept until it has passed, then purged.
    assert_eq!(store.purge_deliveries(later(-60_000)).await.unwrap(), 0);
    assert_eq!(store.purge_deliveries(later(1_000)).await.unwrap(), 1);
    assert!(store
        .list_deliveries(acme.org_id, None, None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sqlite_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("lightbox.db"), &StoreOptions::default())
        .await
        .unwrap();
    the_outbox_leases_retries_and_purges(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_outbox() {
    let db = ThrowawayPostgres::create("outbox").await;
    let store = db.store().await;
    the_outbox_leases_retries_and_purges(&store).await;
    store.close().await;
    db.drop_database().await;
}
