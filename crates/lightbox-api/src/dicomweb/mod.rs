//! DICOMweb (`/dicomweb/...`, PS3.18) for the organization's archive.
//! STOW-RS stores (`stow`), QIDO-RS searches the index (`qido`), WADO-RS
//! reads files, metadata and frames (`wado`), and `rendered` makes images.
//!
//! Who may read what is [`DicomwebCaller`]: a Viewer API key or a signed-in
//! web-app session reads the whole archive; a study link's capability reads
//! only its studies (precedence in `access`). Every handler
//! asks the caller before it answers, and answers 404 (never 403) for what
//! the caller may not read, so a scoped caller learns nothing of the rest.
//!
//! Bodies stream under their own limit (`DicomConfig::max_stow_bytes`), not
//! the JSON limit, and errors are plain `{"type","message"}` JSON.

mod access;
mod qido;
mod rendered;
mod stow;
mod wado;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::post;
use axum::Router;
use lightbox_domain::ApiKeyId;
use lightbox_domain::OrgId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dicomweb/studies", post(stow::store))
        .route("/dicomweb/studies/{study}", post(stow::store_in_study))
        .merge(qido::routes())
        .merge(wado::routes())
        .merge(rendered::routes())
}

/// What a DICOMweb caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DicomAccess {
    /// The organization's whole archive (a Viewer API key).
    Archive,
    /// Only these studies (by StudyInstanceUID): the capability a study
    /// link or an ephemeral session grants for the link's lifetime.
    Studies(Vec<String>),
}

/// The caller of a DICOMweb request: which organization, and what of it.
pub struct DicomwebCaller {
    pub org_id: OrgId,
    /// The Viewer API key, when the caller used one (STOW needs one).
    pub api_key_id: Option<ApiKeyId>,
    pub access: DicomAccess,
}

impl DicomwebCaller {
    /// Whether the caller may read this study. Handlers answer 404 when not.
    pub fn can_read(&self, study_instance_uid: &str) -> bool {
        match &self.access {
            DicomAccess::Archive => true,
            DicomAccess::Studies(uids) => uids.iter().any(|u| u == study_instance_uid),
        }
    }

    /// The studies a search must stay within; None for the whole archive.
    pub fn study_scope(&self) -> Option<&[String]> {
        match &self.access {
            DicomAccess::Archive => None,
            DicomAccess::Studies(uids) => Some(uids),
        }
    }
}

impl FromRequestParts<AppState> for DicomwebCaller {
    type Rejection = ApiError;

    /// API key, else the link's capability cookie, else the web session: see `access`.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        access::resolve(parts, state).await
    }
}

/// A study, series or instance UID from the path: a DICOM UID or a 400.
fn path_uid(field: &str, value: &str) -> Result<String, ApiError> {
    lightbox_domain::validate::dicom_uid(field, value)?;
    Ok(value.to_owned())
}
