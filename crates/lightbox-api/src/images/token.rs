//! `POST /api/auth/v2/token`: OAuth client credentials for an access token.
//!
//! Access tokens are signed claims (organization, client, expiry) with the
//! server's URL-signing key under their own purpose, so no token is stored
//! anywhere and every replica verifies every other's. Each use also checks
//! that the client still exists and is not revoked.

use super::ACCESS_TOKEN;
use crate::audit::{AuditActor, AuditSlot};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use lightbox_blob::Claims;
use lightbox_domain::audit::ActorKind;
use lightbox_domain::credentials::secret_matches;
use lightbox_domain::{OAuthClientId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"client_id": "cli_01966b0e7f3a7c4e9a513f2b8d6c1e27", "client_secret": "…"}))]
pub struct TokenRequest {
    client_id: String,
    client_secret: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ...", "expires_in": 18000, "token_type": "Bearer"}))]
pub(crate) struct TokenResponse {
    access_token: String,
    expires_in: u64,
    token_type: &'static str,
}

/// Reads the credentials from a JSON or form-encoded body, as the Candid docs allow.
async fn credentials(request: Request, state: &AppState) -> Result<TokenRequest, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => crate::extract::JsonBody::<TokenRequest>::from_request(request, state)
            .await
            .map(|b| b.0),
        "application/x-www-form-urlencoded" => Form::<TokenRequest>::from_request(request, state)
            .await
            .map(|f| f.0)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
                _ => ApiError::bad_request(format!("invalid form body: {}", e.body_text())),
            }),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send client_id and client_secret as application/json or application/x-www-form-urlencoded",
        )),
    }
}

#[utoipa::path(post, path = "/api/auth/v2/token", operation_id = "getToken", tag = "images",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "An access token for the Images API", body = TokenResponse),
        (status = 401, description = "Unknown, revoked or wrong client credentials", body = crate::openapi::ImagesError),
        (status = 415, description = "Neither JSON nor a form", body = crate::openapi::ImagesError)))]
pub async fn issue(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let slot = request.extensions().get::<AuditSlot>().cloned();
    let body = credentials(request, &state).await?;
    // One answer for every failure, so a caller cannot probe for client ids.
    let invalid = || ApiError::unauthorized("invalid client credentials");
    let client_id = OAuthClientId::parse(body.client_id.trim()).map_err(|_| invalid())?;
    let client = state
        .store
        .oauth_client(&client_id)
        .await?
        .ok_or_else(invalid)?;
    // A known client's attempts, good or bad, go to its organization's audit trail.
    if let Some(slot) = slot {
        slot.set(AuditActor {
            org_id: client.org_id,
            kind: ActorKind::OAuthClient,
            id: Some(client.id.to_string()),
        });
    }
    state.rate_limit(client.id.as_str())?;
    if client.revoked || !secret_matches(&body.client_secret, &client.secret_hash) {
        return Err(invalid());
    }
    let lifetime = state.config.token_lifetime.as_secs();
    let access_token = state.signer.sign(&Claims {
        purpose: ACCESS_TOKEN.into(),
        org: client.org_id.to_string(),
        subject: client.id.to_string(),
        expires_at_ms: Timestamp::now()
            .plus_seconds(i64::try_from(lifetime).unwrap_or(i64::MAX))
            .millis(),
    });
    let reply = Json(TokenResponse {
        access_token,
        expires_in: lifetime,
        token_type: "Bearer",
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], reply).into_response())
}
