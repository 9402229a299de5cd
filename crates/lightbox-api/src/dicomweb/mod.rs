//! DICOMweb (`/dicomweb/...`, PS3.18) for the organization's archive,
//! authenticated with its Viewer API key (`Authorization: Bearer lbk_...`).
//! STOW-RS stores (`stow`); retrieving one stored instance (`wado`) proves
//! the archive; QIDO-RS and the rest of WADO-RS build on the same index.
//!
//! Bodies stream under their own limit (`DicomConfig::max_stow_bytes`), not
//! the JSON limit, and errors are plain `{"type","message"}` JSON.

mod stow;
mod wado;

use crate::auth;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use lightbox_domain::ApiKeyId;
use lightbox_domain::OrgId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dicomweb/studies", post(stow::store))
        .route("/dicomweb/studies/{study}", post(stow::store_in_study))
        .route(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}",
            get(wado::instance),
        )
}

/// The caller of a DICOMweb request: an organization's Viewer API key.
pub struct DicomwebCaller {
    pub org_id: OrgId,
    pub api_key_id: ApiKeyId,
}

impl FromRequestParts<AppState> for DicomwebCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = auth::api_key(parts, state).await?;
        Ok(DicomwebCaller {
            org_id: key.org_id,
            api_key_id: key.id,
        })
    }
}

/// A study, series or instance UID from the path: a DICOM UID or a 400.
fn path_uid(field: &str, value: &str) -> Result<String, ApiError> {
    lightbox_domain::validate::dicom_uid(field, value)?;
    Ok(value.to_owned())
}
