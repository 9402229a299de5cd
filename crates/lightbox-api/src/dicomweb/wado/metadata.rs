//! Study, series and instance metadata (`application/dicom+json`): one
//! indexed query, and the stored JSON copied into the answer with its bulk
//! data URIs made absolute (never parsed again). A series' answer is kept
//! whole in the blob store once built (`series_documents`), and read from
//! there while the series has no new instance.

use super::{accept, not_acceptable, single, too_many, Uids};
use crate::dicomweb::DicomwebCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use lightbox_dicom::dicomweb::wado::accept::accepts_json;
use lightbox_dicom::dicomweb::wado::metadata::{metadata_array, resolve, series_document};
use lightbox_domain::OrgId;
use lightbox_store::InstanceMetadata;

/// The most instances one metadata answer holds (a study larger than this
/// is read series by series, as OHIF does).
pub const MAX_METADATA_INSTANCES: usize = 10_000;

/// Study, series or instance metadata, by the route's path.
pub(super) async fn metadata(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    uids: Uids,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !accepts_json(&accept(&headers)) {
        return Err(not_acceptable(
            "metadata is served as application/dicom+json",
        ));
    }
    if !caller.can_read(&uids.study) {
        return Err(uids.not_found());
    }
    let base = crate::public_base(&state.config, &headers);
    if let (Some(series), None) = (&uids.series, &uids.instance) {
        let document = series_metadata(&state, caller.org_id, &uids, series).await?;
        return Ok(json(resolve(&document, &base)));
    }
    let rows = metadata_rows(&state, caller.org_id, &uids).await?;
    Ok(json(metadata_array(&base, &uids.study, &rows).into_bytes()))
}

/// The stored metadata of the instances the path names: 404 when none,
/// 400 beyond [`MAX_METADATA_INSTANCES`].
async fn metadata_rows(
    state: &AppState,
    org_id: OrgId,
    uids: &Uids,
) -> Result<Vec<InstanceMetadata>, ApiError> {
    let rows = state
        .store
        .wado_metadata(org_id, uids.scope(), MAX_METADATA_INSTANCES + 1)
        .await?;
    if rows.is_empty() {
        return Err(uids.not_found());
    }
    if rows.len() > MAX_METADATA_INSTANCES {
        return Err(too_many(MAX_METADATA_INSTANCES));
    }
    Ok(rows)
}

/// The series' document: the one kept for its instance count, or else
/// built from the index (and kept, when the rows read are that count's).
async fn series_metadata(
    state: &AppState,
    org_id: OrgId,
    uids: &Uids,
    series: &str,
) -> Result<bytes::Bytes, ApiError> {
    let Some(count) = state
        .store
        .dicom_series_instance_count(org_id, &uids.study, series)
        .await?
    else {
        return Err(uids.not_found());
    };
    if count > MAX_METADATA_INSTANCES as i64 {
        return Err(too_many(MAX_METADATA_INSTANCES));
    }
    if let Some(kept) = state.series_documents.get(org_id, series, count).await {
        return Ok(kept);
    }
    let rows = metadata_rows(state, org_id, uids).await?;
    let document = bytes::Bytes::from(series_document(&uids.study, &rows).into_bytes());
    // An instance that arrived between the two reads makes the rows a
    // later set than `count` names: answer them, keep nothing.
    if rows.len() as i64 == count {
        state
            .series_documents
            .keep(org_id, series, count, document.clone());
    }
    Ok(document)
}

fn json(body: Vec<u8>) -> Response {
    let length = body.len() as u64;
    single("application/dicom+json", Body::from(body), Some(length))
}
