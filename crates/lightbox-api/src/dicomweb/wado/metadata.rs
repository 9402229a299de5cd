//! Study, series and instance metadata (`application/dicom+json`): one
//! indexed query, and the stored JSON copied into the answer with its bulk
//! data URIs made absolute (never parsed again).

use super::{accept, not_acceptable, single, too_many, Uids};
use crate::dicomweb::DicomwebCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use lightbox_dicom::dicomweb::wado::accept::accepts_json;
use lightbox_dicom::dicomweb::wado::metadata::{instance_url, write_instance};

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
    let rows = state
        .store
        .wado_metadata(caller.org_id, uids.scope(), MAX_METADATA_INSTANCES + 1)
        .await?;
    if rows.is_empty() {
        return Err(uids.not_found());
    }
    if rows.len() > MAX_METADATA_INSTANCES {
        return Err(too_many(MAX_METADATA_INSTANCES));
    }
    let base = crate::public_base(&state.config, &headers);
    let size: usize = rows.iter().map(|r| r.metadata.len() + 300).sum();
    let mut out = String::with_capacity(size + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let url = instance_url(
            &base,
            &uids.study,
            &row.series_instance_uid,
            &row.sop_instance_uid,
        );
        write_instance(&mut out, row, &url);
    }
    out.push(']');
    let length = out.len() as u64;
    Ok(single(
        "application/dicom+json",
        Body::from(out),
        Some(length),
    ))
}
