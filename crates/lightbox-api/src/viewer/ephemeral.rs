//! `POST /v1/viewer/ephemeral-sessions`.

use super::wire::UrlResponse;
use super::{Caller, ViewerResult};
use crate::audit::about;
use crate::extract::JsonBody;
use crate::{public_base, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lightbox_blob::Claims;
use lightbox_domain::ephemeral::{
    validate_options, validate_retrieval_id, EphemeralSessionId, HangingProtocol,
    EPHEMERAL_TTL_SECS,
};
use lightbox_domain::Timestamp;
use lightbox_store::EphemeralSession;
use serde::Deserialize;

/// The purpose bound into ephemeral-session links; see `crate::landing`.
pub(crate) const EPHEMERAL_SESSION: &str = "ephemeral-session";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralSessionBody {
    retrieval_id: String,
    hanging_protocol: Option<HangingProtocol>,
    options: Option<serde_json::Value>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<EphemeralSessionBody>,
) -> ViewerResult<Response> {
    validate_retrieval_id(&body.retrieval_id)?;
    if let Some(protocol) = &body.hanging_protocol {
        protocol.validate()?;
    }
    if let Some(options) = &body.options {
        validate_options(options)?;
    }
    let session = EphemeralSession {
        id: EphemeralSessionId::generate(),
        retrieval_id: body.retrieval_id,
        hanging_protocol: body.hanging_protocol,
        options: body.options,
        expires_at: Timestamp::now().plus_seconds(EPHEMERAL_TTL_SECS),
    };
    state
        .store
        .create_ephemeral_session(caller.org_id, caller.key.id, &session)
        .await?;
    let token = state.signer.sign(&Claims {
        purpose: EPHEMERAL_SESSION.into(),
        org: caller.org_id.to_string(),
        subject: session.id.to_string(),
        expires_at_ms: session.expires_at.millis(),
    });
    let url = format!(
        "{}/viewer/session/{token}",
        public_base(&state.config, &headers)
    );
    Ok(about(
        session.id.as_str(),
        Json(UrlResponse { url }).into_response(),
    ))
}
