//! The web app's entries in the organization's audit trail: sign-ins (and
//! their failures), sign-outs, password changes, and what a signed-in person
//! read or changed. Actions follow the API's `resource.verb` names, with the
//! user as actor, so one trail shows both. Never a password or a token.

use crate::WebState;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use lightbox_domain::audit::{ActorKind, AuditEvent, AuditEventId, Outcome};
use lightbox_domain::{OrgId, Timestamp, UserId};
use std::net::SocketAddr;

/// Where a request came from, for the trail and the sign-in throttle.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl Origin {
    pub fn of(parts: &Parts, trust_forwarded_for: bool) -> Origin {
        Origin::from_headers(
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
            trust_forwarded_for,
        )
    }

    pub fn from_headers(
        headers: &HeaderMap,
        peer: Option<&ConnectInfo<SocketAddr>>,
        trust_forwarded_for: bool,
    ) -> Origin {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let forwarded = trust_forwarded_for
            .then(|| text("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.split(',').next())
            .map(|ip| ip.trim().to_owned());
        Origin {
            client_ip: forwarded.or_else(|| peer.map(|ConnectInfo(a)| a.ip().to_string())),
            request_id: text("x-request-id").map(str::to_owned),
        }
    }
}

/// Appends one event; false when the trail cannot be written (the caller
/// then refuses to show or change data, as the API does).
pub async fn record(
    state: &WebState,
    origin: &Origin,
    org_id: OrgId,
    user: &UserId,
    action: &str,
    resource_id: Option<&str>,
    status: u16,
) -> bool {
    state
        .audit
        .record(AuditEvent {
            id: AuditEventId::generate(),
            org_id,
            occurred_at: Timestamp::now(),
            actor_kind: ActorKind::User,
            actor_id: Some(user.to_string()),
            action: action.to_owned(),
            resource_type: action.split_once('.').map(|(kind, _)| kind.to_owned()),
            resource_id: resource_id.map(str::to_owned),
            outcome: Outcome::from_status(status),
            status,
            client_ip: origin.client_ip.clone(),
            request_id: origin.request_id.clone(),
        })
        .await
}
