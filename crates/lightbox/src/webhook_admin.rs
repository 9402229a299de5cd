//! `lightbox admin …-webhook…`: partners' endpoints, their signing secrets,
//! and the outbox's deliveries. A secret is printed once, when made; the
//! database keeps it sealed with `--webhook-secret-key`.

use crate::admin::{existing_org, print};
use crate::config::{StoreArgs, WebhookKeyArgs};
use clap::Args;
use lightbox_domain::webhook::{
    envelope, AccessResponse, EventType, StudyAccessRequested, WebhookEndpointId, WebhookEventId,
};
use lightbox_domain::{ApiKeyId, StudyId, Timestamp};
use lightbox_store::{DeliveryStatus, NewWebhookEndpoint, WebhookEndpoint};
use lightbox_webhooks::seal::context;
use lightbox_webhooks::send::check_destination;
use lightbox_webhooks::{destination, SendConfig, Sender, SigningSecret};
use serde_json::json;
use std::time::Duration;

#[derive(Args)]
pub struct CreateWebhookArgs {
    #[arg(long)]
    org: String,
    /// Where events are POSTed: `https://…` (`http://` and private addresses
    /// need the server's --webhook-allow-private).
    #[arg(long)]
    url: String,
    /// Take only the events of studies this API key created (else the
    /// organization's events that no key's endpoint takes).
    #[arg(long)]
    api_key: Option<String>,
    /// Comma-separated event types (default: all), e.g. `study.created,image.uploaded`.
    #[arg(long, default_value = "")]
    events: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: WebhookKeyArgs,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct ListWebhooksArgs {
    #[arg(long)]
    org: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of the verbs that act on one endpoint.
#[derive(Args)]
pub struct WebhookArgs {
    #[arg(long)]
    org: String,
    /// The endpoint (`whk_…`).
    #[arg(long)]
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct RotateWebhookArgs {
    #[command(flatten)]
    webhook: WebhookArgs,
    /// Hours the old secret keeps signing beside the new one.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(0..=720))]
    overlap_hours: u64,
    #[command(flatten)]
    key: WebhookKeyArgs,
}

#[derive(Args)]
pub struct DeliveriesArgs {
    #[arg(long)]
    org: String,
    /// Only deliveries in this state: pending, delivered or dead.
    #[arg(long)]
    status: Option<String>,
    /// Only deliveries to this endpoint (`whk_…`).
    #[arg(long)]
    webhook: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct TestWebhookArgs {
    #[arg(long)]
    org: String,
    /// The endpoint (`whk_…`).
    #[arg(long)]
    id: String,
    /// The study (`stu_…`) the `study.access_requested` call names.
    #[arg(long)]
    study: String,
    /// Allow `http://` and private addresses, as the server's flag does.
    #[arg(long)]
    webhook_allow_private: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    timeout_secs: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: WebhookKeyArgs,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct RedeliverArgs {
    #[arg(long)]
    org: String,
    /// The delivery (`whe_…`): sent again with the same id and body.
    #[arg(long)]
    id: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

fn endpoint_json(e: &WebhookEndpoint) -> serde_json::Value {
    json!({
        "webhook_id": e.id.as_str(),
        "url": e.url,
        "api_key_id": e.api_key_id.map(|k| k.to_string()),
        "events": e.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "previous_secret_until": e.previous_secret.as_ref().map(|(_, until)| until.to_rfc3339()),
        "created_at": e.created_at.to_rfc3339(),
    })
}

pub async fn create(args: CreateWebhookArgs) -> anyhow::Result<()> {
    check_destination(&args.url, true).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    if let Err(e) = check_destination(&args.url, false) {
        eprintln!("note: {e}");
    }
    let event_types = EventType::parse_list(&args.events)?;
    let api_key_id = args.api_key.as_deref().map(ApiKeyId::parse).transpose()?;
    let key = args.key.require()?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let id = WebhookEndpointId::generate();
    let secret = SigningSecret::generate();
    let endpoint = store
        .create_webhook_endpoint(
            org_id,
            &NewWebhookEndpoint {
                secret_sealed: key.seal(&secret, &context(id.as_str())),
                id,
                api_key_id,
                url: args.url,
                event_types,
            },
        )
        .await?;
    let mut shown = endpoint_json(&endpoint);
    shown["secret"] = json!(secret.reveal());
    print(args.json, shown);
    Ok(())
}

pub async fn list(args: ListWebhooksArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let endpoints = store.webhook_endpoints(org_id).await?;
    if !args.json {
        println!(
            "{:<36}  {:<8}  {:<36}  {:<30}  url",
            "webhook", "enabled", "api key", "events"
        );
    }
    for e in &endpoints {
        if args.json {
            println!("{}", endpoint_json(e));
            continue;
        }
        let events = if e.event_types.is_empty() {
            "all".to_owned()
        } else {
            e.event_types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{:<36}  {:<8}  {:<36}  {:<30}  {}",
            e.id,
            if e.enabled { "yes" } else { "no" },
            e.api_key_id
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            events,
            e.url
        );
    }
    Ok(())
}

pub async fn set_enabled(args: WebhookArgs, enabled: bool) -> anyhow::Result<()> {
    let id = WebhookEndpointId::parse(&args.id)?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    store
        .set_webhook_enabled(org_id, &id, enabled, Some("disabled by an operator"))
        .await?;
    print(
        args.json,
        json!({ "webhook_id": id.as_str(), "enabled": enabled }),
    );
    Ok(())
}

pub async fn rotate(args: RotateWebhookArgs) -> anyhow::Result<()> {
    let id = WebhookEndpointId::parse(&args.webhook.id)?;
    let key = args.key.require()?;
    let store = args.webhook.store.open().await?;
    let org_id = existing_org(&store, &args.webhook.org).await?;
    let endpoint = store
        .webhook_endpoint(org_id, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no webhook endpoint {id} in organization {org_id}"))?;
    // The current secret must open: it is what keeps signing during the overlap.
    key.open(&endpoint.secret_sealed, &context(id.as_str()))?;
    let secret = SigningSecret::generate();
    let until = Timestamp::now().plus_seconds(args.overlap_hours as i64 * 3600);
    store
        .rotate_webhook_secret(
            org_id,
            &id,
            &key.seal(&secret, &context(id.as_str())),
            until,
        )
        .await?;
    print(
        args.webhook.json,
        json!({
            "webhook_id": id.as_str(),
            "secret": secret.reveal(),
            "previous_secret_until": until.to_rfc3339(),
        }),
    );
    Ok(())
}

pub async fn delete(args: WebhookArgs) -> anyhow::Result<()> {
    let id = WebhookEndpointId::parse(&args.id)?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    store.delete_webhook_endpoint(org_id, &id).await?;
    print(args.json, json!({ "deleted": id.as_str() }));
    Ok(())
}

pub async fn deliveries(args: DeliveriesArgs) -> anyhow::Result<()> {
    let status = args
        .status
        .as_deref()
        .map(DeliveryStatus::parse)
        .transpose()?;
    let webhook = args
        .webhook
        .as_deref()
        .map(WebhookEndpointId::parse)
        .transpose()?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let rows = store
        .list_deliveries(org_id, status, webhook.as_ref(), args.limit)
        .await?;
    if !args.json {
        println!(
            "{:<36}  {:<28}  {:<9}  {:>8}  {:<6}  {:<24}  error",
            "delivery", "type", "status", "attempts", "http", "next attempt"
        );
    }
    for d in &rows {
        if args.json {
            println!(
                "{}",
                json!({
                    "delivery_id": d.id.as_str(), "webhook_id": d.endpoint_id.as_str(),
                    "type": d.event_type.as_str(), "status": d.status.as_str(),
                    "attempts": d.attempts, "last_http_status": d.last_status,
                    "last_error": d.last_error, "created_at": d.created_at.to_rfc3339(),
                    "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| d.next_attempt_at.to_rfc3339()),
                    "finished_at": d.finished_at.map(|t| t.to_rfc3339()),
                })
            );
            continue;
        }
        println!(
            "{:<36}  {:<28}  {:<9}  {:>8}  {:<6}  {:<24}  {}",
            d.id,
            d.event_type.as_str(),
            d.status.as_str(),
            d.attempts,
            d.last_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            if d.status == DeliveryStatus::Pending {
                d.next_attempt_at.to_rfc3339()
            } else {
                "-".into()
            },
            d.last_error.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

pub async fn redeliver(args: RedeliverArgs) -> anyhow::Result<()> {
    let id = WebhookEventId::parse(&args.id)?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    store.redeliver(org_id, &id).await?;
    print(
        args.json,
        json!({ "delivery_id": id.as_str(), "status": "pending" }),
    );
    Ok(())
}

/// Sends one real, signed `study.access_requested` call to the endpoint, as
/// the viewer will, and prints the partner's (strictly parsed) answer.
pub async fn test(args: TestWebhookArgs) -> anyhow::Result<()> {
    let id = WebhookEndpointId::parse(&args.id)?;
    let study_id = StudyId::parse(&args.study)?;
    let key = args.key.require()?;
    let store = args.store.open().await?;
    let org_id = existing_org(&store, &args.org).await?;
    let endpoint = store
        .webhook_endpoint(org_id, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no webhook endpoint {id} in organization {org_id}"))?;
    let study = store
        .study(org_id, &study_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no study {study_id} in organization {org_id}"))?;
    let event_id = WebhookEventId::generate();
    let body = envelope(
        &event_id,
        EventType::StudyAccessRequested,
        &StudyAccessRequested {
            study_id: study.id.to_string(),
            study_instance_uid: study.study_instance_uid,
        },
    );
    let sender = Sender::new(SendConfig {
        timeout: Duration::from_secs(args.timeout_secs),
        allow_private: args.webhook_allow_private,
        ..SendConfig::default()
    });
    let to = destination(&key, &endpoint)?;
    let answer: AccessResponse = sender
        .call(&to, event_id.as_str(), body.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{id} did not answer usably: {e}"))?;
    print(
        args.json,
        json!({
            "event_id": event_id.as_str(),
            "authorized": answer.authorized,
            "url_count": answer.urls.len(),
            "error": answer.error,
        }),
    );
    Ok(())
}
