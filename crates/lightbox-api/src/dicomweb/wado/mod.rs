//! WADO-RS (PS3.18 10.4): retrieve of studies, series and instances as
//! Part 10 files (`retrieve`), their metadata as DICOM JSON from the index
//! (`metadata`), and frames and bulk data by ranged reads of the stored file
//! (`frames`). The routes below are the table of contents.
//!
//! Every handler looks the resource up with the caller's organization
//! leading the key and asks [`DicomwebCaller::can_read`] first: what the
//! caller may not read is 404, exactly like what does not exist.

mod frames;
mod metadata;
mod retrieve;

use super::{path_uid, DicomwebCaller};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use lightbox_dicom::dicomweb::multipart::MediaType;
use lightbox_dicom::dicomweb::wado::accept::media_ranges;
use lightbox_store::{WadoInstance, WadoScope};
use std::collections::HashMap;

/// Retrieve, metadata, frames and bulk data.
pub fn routes() -> Router<AppState> {
    const INSTANCE: &str = "/dicomweb/studies/{study}/series/{series}/instances/{instance}";
    Router::new()
        .route("/dicomweb/studies/{study}", get(retrieve::retrieve))
        .route(
            "/dicomweb/studies/{study}/series/{series}",
            get(retrieve::retrieve),
        )
        .route(INSTANCE, get(retrieve::retrieve))
        .route(
            "/dicomweb/studies/{study}/metadata",
            get(metadata::metadata),
        )
        .route(
            "/dicomweb/studies/{study}/series/{series}/metadata",
            get(metadata::metadata),
        )
        .route(&format!("{INSTANCE}/metadata"), get(metadata::metadata))
        .route(
            &format!("{INSTANCE}/frames/{{frames}}"),
            get(frames::frames),
        )
        .route(&format!("{INSTANCE}/bulk/{{tag}}"), get(frames::bulk))
}

/// The request's media ranges, from every `Accept` header it has.
fn accept(headers: &HeaderMap) -> Vec<MediaType> {
    let joined: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    media_ranges(Some(&joined.join(", ")))
}

fn not_acceptable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_ACCEPTABLE, "not_acceptable", message)
}

/// The path's UIDs, each checked (400 when not a DICOM UID).
pub(super) struct Uids {
    pub(super) study: String,
    pub(super) series: Option<String>,
    pub(super) instance: Option<String>,
}

/// The UIDs a route's path names (`{study}`, and `{series}` and
/// `{instance}` where it has them), each checked: one extractor for every level.
impl FromRequestParts<AppState> for Uids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Uids, ApiError> {
        Ok(Uids::with_params(parts, state).await?.0)
    }
}

impl Uids {
    /// The checked UIDs and every parameter of the path (for the routes
    /// that name more than UIDs, such as a rendered frame's number).
    pub(super) async fn with_params(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<(Uids, HashMap<String, String>), ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let study = params
            .get("study")
            .ok_or_else(|| ApiError::bad_request("the path names no study"))?;
        let uids = Uids::parse(
            study,
            params.get("series").map(String::as_str),
            params.get("instance").map(String::as_str),
        )?;
        Ok((uids, params))
    }

    fn parse(study: &str, series: Option<&str>, instance: Option<&str>) -> Result<Uids, ApiError> {
        Ok(Uids {
            study: path_uid("StudyInstanceUID", study)?,
            series: series
                .map(|s| path_uid("SeriesInstanceUID", s))
                .transpose()?,
            instance: instance
                .map(|i| path_uid("SOPInstanceUID", i))
                .transpose()?,
        })
    }

    fn scope(&self) -> WadoScope<'_> {
        WadoScope {
            study: &self.study,
            series: self.series.as_deref(),
            instance: self.instance.as_deref(),
        }
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(match (&self.series, &self.instance) {
            (Some(se), Some(sop)) => {
                format!("no instance {sop} in series {se} of study {}", self.study)
            }
            (None, Some(sop)) => format!("no instance {sop} in study {}", self.study),
            (Some(se), None) => format!("no series {se} in study {}", self.study),
            (None, None) => format!("no study {}", self.study),
        })
    }
}

/// The instances the caller may read in `uids`' scope: 404 when none, 400
/// when more than `limit`.
async fn readable_instances(
    state: &AppState,
    caller: &DicomwebCaller,
    uids: &Uids,
    limit: usize,
) -> Result<Vec<WadoInstance>, ApiError> {
    if !caller.can_read(&uids.study) {
        return Err(uids.not_found());
    }
    let found = state
        .store
        .wado_instances(caller.org_id, uids.scope(), limit + 1)
        .await?;
    if found.is_empty() {
        return Err(uids.not_found());
    }
    if found.len() > limit {
        return Err(too_many(limit));
    }
    Ok(found)
}

fn too_many(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "too_many_instances",
        format!("more than {limit} instances: ask for them series by series"),
    )
}

/// A stored file that cannot be read is our failure, not the caller's.
fn blob_error(key: &str, e: lightbox_blob::BlobError) -> ApiError {
    tracing::error!(error = %e, key, "an indexed instance's file cannot be read");
    ApiError::from(lightbox_domain::Error::Internal(
        "an indexed instance has no readable file".into(),
    ))
}

/// A fresh multipart boundary.
fn boundary() -> String {
    format!("lightbox-{}", uuid::Uuid::new_v4().simple())
}

/// The bytes before part `index`'s body: its delimiter and `Content-Type`.
/// cornerstone's parser wants the body to start with `--boundary`, the
/// header spelled `Content-Type:`, and a blank line before the data.
fn part_head(boundary: &str, index: usize, content_type: &str) -> Bytes {
    let lead = if index == 0 { "" } else { "\r\n" };
    Bytes::from(format!(
        "{lead}--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
    ))
}

/// The close delimiter after the last part.
fn part_tail(boundary: &str) -> Bytes {
    Bytes::from(format!("\r\n--{boundary}--\r\n"))
}

/// A `multipart/related` response of parts of `part_type`.
fn multipart(boundary: &str, part_type: &str, body: Body, length: Option<u64>) -> Response {
    single(
        &format!("multipart/related; type=\"{part_type}\"; boundary={boundary}"),
        body,
        length,
    )
}

/// A response of one media type.
fn single(content_type: &str, body: Body, length: Option<u64>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

/// At most this many conversions (decoding, transcoding, inflating) run at
/// once: each holds an instance in memory and a core busy.
static CONVERSIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Runs a conversion on a blocking thread, after a place among
/// [`CONVERSIONS`] is free.
async fn convert<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = CONVERSIONS
        .acquire()
        .await
        .map_err(|e| ApiError::from(lightbox_domain::Error::Internal(e.to_string())))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::from(lightbox_domain::Error::Internal(e.to_string())))
}

/// The whole stored file, for a conversion; larger than the conversion cap
/// is 406 (the stored form is still served).
async fn whole_file(state: &AppState, instance: &WadoInstance) -> Result<Bytes, ApiError> {
    use lightbox_dicom::dicomweb::wado::transcode::MAX_FILE_BYTES;
    let size = instance.size_bytes.max(0) as u64;
    if size > MAX_FILE_BYTES {
        return Err(not_acceptable(format!(
            "instance {} ({size} bytes) is larger than the {MAX_FILE_BYTES} bytes converted here; \
             ask for its stored transfer syntax {} (transfer-syntax=*)",
            instance.sop_instance_uid, instance.transfer_syntax_uid
        )));
    }
    state
        .blobs
        .get_range(&instance.blob_key, 0..size)
        .await
        .map_err(|e| blob_error(&instance.blob_key, e))
}
