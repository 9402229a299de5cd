//! Credentials on requests.

use crate::audit::{AuditActor, AuditSlot};
use crate::error::ApiError;
use crate::AppState;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lightbox_domain::audit::ActorKind;
use lightbox_domain::credentials::{parse_api_key, secret_matches};
use lightbox_domain::OrgId;
use lightbox_store::ApiKeyRecord;

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves `Authorization: Bearer <api key>` to the stored key. Every failure
/// is the same 401, so a caller cannot tell a wrong secret from an unknown key.
pub async fn api_key(parts: &Parts, state: &AppState) -> Result<ApiKeyRecord, ApiError> {
    let token = bearer_token(parts).ok_or_else(|| {
        ApiError::unauthorized("send your API key as `Authorization: Bearer <api key>`")
    })?;
    let invalid = || ApiError::unauthorized("the API key is not valid");
    let (id, secret) = parse_api_key(token).ok_or_else(invalid)?;
    let record = state.store.api_key(id).await?.ok_or_else(invalid)?;
    if record.revoked || !secret_matches(secret, &record.secret_hash) {
        return Err(invalid());
    }
    identified(
        parts,
        state,
        record.org_id,
        ActorKind::ApiKey,
        record.id.to_string(),
    )?;
    Ok(record)
}

/// Records who the request acts as (for the audit trail), then applies the
/// credential's rate limit.
pub fn identified(
    parts: &Parts,
    state: &AppState,
    org_id: OrgId,
    kind: ActorKind,
    id: String,
) -> Result<(), ApiError> {
    if let Some(slot) = parts.extensions.get::<AuditSlot>() {
        slot.set(AuditActor {
            org_id,
            kind,
            id: Some(id.clone()),
        });
    }
    state.rate_limit(&id)
}
