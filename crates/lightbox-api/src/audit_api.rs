//! `GET /v1/audit/events`: an organization's audit trail, for its administrators.
//! API keys are organization-level credentials (issued to the owner or by an
//! operator), so any of the organization's API keys may read it.

use crate::extract::QueryMap;
use crate::viewer::{page_json, Caller, ViewerResult};
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lightbox_domain::audit::{AuditEvent, AuditEventId, AuditFilter};
use lightbox_domain::pagination::{decode_cursor, encode_cursor, parse_limit};
use lightbox_domain::{validate, Error, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

const EVENTS: &str = "events";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit/events", get(list))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEvent, example = json!({
    "eventId": "aud_01966b0e7f3a7c4e9a513f2b8d6c1e28",
    "occurredAt": "2025-01-30T12:34:56.789Z", "actorType": "api_key",
    "actorId": "01966b0e-0000-7000-8000-000000000001", "action": "study.read",
    "resourceType": "study", "resourceId": "stu_01966b0e7f3a7c4e9a513f2b8d6c1e22",
    "outcome": "success", "status": 200, "clientIp": "203.0.113.7",
    "requestId": "5b0c9a8e-2f1d-4c3b-9a7e-6d5c4b3a2f10"
}))]
pub(crate) struct AuditEventJson<'a> {
    event_id: &'a str,
    occurred_at: Timestamp,
    #[schema(value_type = lightbox_domain::audit::ActorKind)]
    actor_type: &'static str,
    actor_id: Option<&'a str>,
    action: &'a str,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
    #[schema(value_type = lightbox_domain::audit::Outcome)]
    outcome: &'static str,
    status: u16,
    client_ip: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl<'a> From<&'a AuditEvent> for AuditEventJson<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        AuditEventJson {
            event_id: e.id.as_str(),
            occurred_at: e.occurred_at,
            actor_type: e.actor_kind.as_str(),
            actor_id: e.actor_id.as_deref(),
            action: &e.action,
            resource_type: e.resource_type.as_deref(),
            resource_id: e.resource_id.as_deref(),
            outcome: e.outcome.as_str(),
            status: e.status,
            client_ip: e.client_ip.as_deref(),
            request_id: e.request_id.as_deref(),
        }
    }
}

fn instant(query: &QueryMap, key: &str) -> Result<Option<Timestamp>, Error> {
    query
        .non_empty(key)
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                Error::invalid(key, format!("{key} must be an RFC 3339 time, got `{v}`"))
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/audit/events", operation_id = "listAuditEvents", tag = "audit", security(("apiKey" = [])),
    params(
        ("action" = Option<String>, Query, description = "e.g. `study.read`"),
        ("resourceId" = Option<String>, Query), ("actorId" = Option<String>, Query),
        ("since" = Option<String>, Query, format = DateTime), ("until" = Option<String>, Query, format = DateTime),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 25)"),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page")),
    responses((status = 200, description = "One page of audit events, newest first", body = crate::openapi::AuditEventPage)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> ViewerResult<Response> {
    let text = |key: &str| -> Result<Option<String>, Error> {
        query
            .non_empty(key)
            .map(|v| validate::bounded_text(key, v, 200).map(|_| v.to_owned()))
            .transpose()
    };
    let filter = AuditFilter {
        action: text("action")?,
        resource_id: text("resourceId")?,
        actor_id: text("actorId")?,
        since: instant(&query, "since")?,
        until: instant(&query, "until")?,
    };
    let limit = parse_limit(query.non_empty("limit"))?;
    let after = query
        .non_empty("cursor")
        .map(|c| decode_cursor(EVENTS, c, AuditEventId::parse))
        .transpose()?;
    let page = state
        .store
        .list_audit_events(caller.org_id, &filter, limit, after.as_ref())
        .await?;
    let cursor = page.next_after.map(|id| encode_cursor(EVENTS, id.as_str()));
    let events = page.items.iter().map(AuditEventJson::from).collect();
    Ok(Json(page_json(EVENTS, events, cursor)).into_response())
}
