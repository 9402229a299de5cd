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
use utoipa::ToSchema;

/// The purpose bound into ephemeral-session links; see `crate::landing`.
pub(crate) const EPHEMERAL_SESSION: &str = "ephemeral-session";

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EphemeralSessionRequest, example = json!({
    "retrievalId": "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
    "hangingProtocol": {"layout": "1x2", "viewportAssignments": ["1.2.3.4", null]}
}))]
pub struct EphemeralSessionBody {
    #[schema(max_length = 256)]
    retrieval_id: String,
    hanging_protocol: Option<HangingProtocol>,
    /// Viewer options, passed through; at most 3072 bytes as JSON.
    #[schema(value_type = Option<Object>)]
    options: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/v1/viewer/ephemeral-sessions", operation_id = "createEphemeralSession", tag = "ephemeral sessions", security(("apiKey" = [])),
    request_body = EphemeralSessionBody,
    responses((status = 200, description = "A link to a viewer session, valid for 30 seconds", body = super::wire::UrlResponse)))]
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
