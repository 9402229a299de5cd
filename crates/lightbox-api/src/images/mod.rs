//! The pre-encounter Images API (`/images/v1`) and its OAuth token endpoint
//! (`/api/auth/v2/token`), wire-compatible with the candidhealth SDK 1.37.0:
//! snake_case JSON, `{"errorName": …, "content": {"message": …}}` errors,
//! `Authorization: Bearer <access token>`.
//!
//! Image bytes on the local backend go through `/blobs/v1/images/{id}`
//! (see [`blobs`]), authorized by the signed link alone.

pub(crate) mod blobs;
pub(crate) mod handlers;
pub(crate) mod token;
pub(crate) mod wire;

pub use blobs::{image_link, ImageLinks};
pub use handlers::verified_upload;

use crate::auth::bearer_token;
use crate::error::{envelope_bare_errors, rerender, ApiError};
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use lightbox_blob::SignError;
use lightbox_domain::audit::ActorKind;
use lightbox_domain::{OAuthClientId, OrgId, Timestamp};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The purpose bound into access tokens.
const ACCESS_TOKEN: &str = "images-access";

/// Every Images route: JSON endpoints with the JSON body limit and request
/// timeout, blob transfers with their own (streaming) size cap and the
/// longer upload timeout, all rendering errors in the Images envelope.
pub fn router(config: &crate::ApiConfig) -> Router<AppState> {
    let json = Router::new()
        .route("/api/auth/v2/token", post(token::issue))
        .route("/images/v1", post(handlers::create).get(handlers::search))
        .route("/images/v1/updates/scan", get(handlers::scan))
        .route("/images/v1/{id}", get(handlers::get))
        .route(
            "/images/v1/{id}/{version}",
            put(handlers::update).delete(handlers::deactivate),
        )
        .layer(RequestBodyLimitLayer::new(config.max_json_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    let transfers = Router::new()
        .route(
            "/blobs/v1/images/{id}",
            put(blobs::upload).get(blobs::download),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.upload_timeout,
        ));
    json.merge(transfers)
        // Caught here (and not only by the app's outer layer), so that even a
        // panic's 500 is rendered in this product's envelope.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::map_response(envelope))
}

/// Re-renders every error, including those of extractors and layers (408,
/// 413), in the Images envelope.
async fn envelope(response: Response) -> Response {
    rerender(render, envelope_bare_errors(response).await).await
}

fn error_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        403 => "ForbiddenError",
        404 => "NotFoundError",
        405 => "MethodNotAllowedError",
        408 => "RequestTimeoutError",
        409 => "VersionConflictError",
        410 => "GoneError",
        413 => "PayloadTooLargeError",
        415 => "InvalidContentTypeError",
        422 => "UnprocessableEntityError",
        429 => "TooManyRequestsError",
        500..=599 => "InternalError",
        _ => "HttpError",
    }
}

/// Whether `path` belongs to the Images API (its routes, token endpoint and blob links).
pub(crate) fn owns_path(path: &str) -> bool {
    ["/images/", "/api/auth/", "/blobs/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
        || path == "/images"
}

pub(crate) fn render(error: &ApiError) -> Response {
    let mut content = serde_json::json!({ "message": error.message });
    if let Some(field) = &error.field {
        content["data"] = serde_json::json!({ "field": field });
    }
    if error.status == StatusCode::CONFLICT {
        content["latest_version"] = error.latest_version.into();
    }
    let body = serde_json::json!({ "errorName": error_name(error.status), "content": content });
    let mut response = (error.status, Json(body)).into_response();
    if error.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The organization and OAuth client an Images request acts for.
pub struct ImagesCaller {
    pub org_id: OrgId,
    pub client_id: OAuthClientId,
}

impl ImagesCaller {
    /// Recorded as `updating_user_id`: requests are made by OAuth clients, not users.
    pub fn actor(&self) -> &str {
        self.client_id.as_str()
    }
}

impl FromRequestParts<AppState> for ImagesCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "send an access token from POST /api/auth/v2/token as `Authorization: Bearer <token>`",
            )
        })?;
        let invalid = || ApiError::unauthorized("the access token is not valid");
        if token.starts_with("lbk_") {
            // Viewer API keys are for the Viewer API; Images takes OAuth tokens only.
            return Err(ApiError::unauthorized(
                "API keys are not accepted here: exchange the OAuth client credentials at \
                 POST /api/auth/v2/token for an access token",
            ));
        }
        let claims = match state
            .signer
            .verify(token, ACCESS_TOKEN, Timestamp::now().millis())
        {
            Ok(claims) => claims,
            Err(SignError::Expired) => {
                return Err(ApiError::unauthorized(
                    "the access token has expired: request a new one",
                ))
            }
            Err(SignError::Invalid) => return Err(invalid()),
        };
        let org_id = OrgId::parse(&claims.org).map_err(|_| invalid())?;
        let client_id = OAuthClientId::parse(&claims.subject).map_err(|_| invalid())?;
        // A revoked (or removed) client's tokens stop working at once.
        match state.store.oauth_client(&client_id).await? {
            Some(client) if !client.revoked && client.org_id == org_id => {
                crate::auth::identified(
                    parts,
                    state,
                    org_id,
                    ActorKind::OAuthClient,
                    client_id.to_string(),
                )?;
                Ok(ImagesCaller { org_id, client_id })
            }
            _ => Err(invalid()),
        }
    }
}
