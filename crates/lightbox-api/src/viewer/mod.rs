//! The Viewer worklist API (`/v1/viewer/...`), wire-compatible with the avara SDK:
//! camelCase JSON, cursor pages, `Authorization: Bearer <api key>`.

mod studies;
pub(crate) use studies::STUDY_VIEW;
mod wire;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use lightbox_domain::study::Actor;
use lightbox_domain::OrgId;
use lightbox_store::ApiKeyRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/viewer/studies",
            post(studies::create).get(studies::list),
        )
        .route("/v1/viewer/studies/cancel", post(studies::cancel))
        .route("/v1/viewer/studies/uncancel", post(studies::uncancel))
        .route("/v1/viewer/studies/reroute-url", post(studies::reroute_url))
        .route(
            "/v1/viewer/studies/by-uid/{uid}",
            get(studies::retrieve_by_uid),
        )
        .route(
            "/v1/viewer/studies/{study_id}",
            get(studies::retrieve).patch(studies::update),
        )
}

pub type ViewerResult<T> = Result<T, ApiError>;

/// The organization and API key a Viewer request acts for.
pub struct Caller {
    pub org_id: OrgId,
    pub key: ApiKeyRecord,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key.id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = crate::auth::api_key(parts, state).await?;
        Ok(Caller {
            org_id: key.org_id,
            key,
        })
    }
}
