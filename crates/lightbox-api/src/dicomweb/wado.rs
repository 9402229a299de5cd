//! WADO-RS retrieve of one instance: the stored Part 10 file as
//! `multipart/related; type="application/dicom"`. Transcoding is not done
//! here: a request for another transfer syntax than the stored one is 406.

use super::{path_uid, DicomwebCaller};
use crate::error::ApiError;
use crate::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use lightbox_dicom::dicomweb::multipart::{split_unquoted, MediaType};

/// Retrieve, metadata, frames and bulk data beyond the single instance.
pub fn routes() -> Router<AppState> {
    Router::new()
}

pub async fn instance(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path((study, series, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let study = path_uid("StudyInstanceUID", &study)?;
    let series = path_uid("SeriesInstanceUID", &series)?;
    let instance = path_uid("SOPInstanceUID", &instance)?;
    let not_found = || {
        ApiError::not_found(format!(
            "no instance {instance} in series {series} of study {study}"
        ))
    };
    let stored = state
        .store
        .dicom_instance(caller.org_id, &instance)
        .await?
        .filter(|i| i.study_instance_uid == study && i.series_instance_uid == series)
        .filter(|_| caller.can_read(&study))
        .ok_or_else(not_found)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if !accepts_stored(accept, &stored.transfer_syntax_uid) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!(
                "this instance is served as multipart/related; type=\"application/dicom\" in its stored \
                 transfer syntax {} (or transfer-syntax=*)",
                stored.transfer_syntax_uid
            ),
        ));
    }
    let (file, len) = state.blobs.get(&stored.blob_key).await.map_err(|e| {
        tracing::error!(error = %e, key = %stored.blob_key, "an indexed instance's file cannot be read");
        ApiError::from(lightbox_domain::Error::Internal("an indexed instance has no readable file".into()))
    })?;
    let boundary = format!("lightbox-{}", uuid::Uuid::new_v4().simple());
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={}\r\n\r\n",
        stored.transfer_syntax_uid
    ));
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let length = head.len() as u64 + len + tail.len() as u64;
    let body = futures_util::stream::once(async move { Ok(head) })
        .chain(file)
        .chain(futures_util::stream::once(async move { Ok(tail) }));
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!(
            "multipart/related; type=\"application/dicom\"; boundary={boundary}"
        ))
        .expect("ASCII"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// Whether `Accept` admits the stored bytes: absent, `*/*`,
/// `multipart/related` with `type` application/dicom (or none) and a
/// `transfer-syntax` that is absent, `*` or the stored one. Quoted or not.
fn accepts_stored(accept: Option<&str>, stored_ts: &str) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    split_unquoted(accept, ',').into_iter().any(|range| {
        let Some(media) = MediaType::parse(range) else {
            return false;
        };
        if media
            .param("q")
            .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        {
            return false;
        }
        match media.essence.as_str() {
            "*/*" | "multipart/*" => true,
            "multipart/related" => {
                media
                    .param("type")
                    .is_none_or(|t| t.eq_ignore_ascii_case("application/dicom"))
                    && media
                        .param("transfer-syntax")
                        .is_none_or(|ts| ts == "*" || ts == stored_ts)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_stored;

    #[test]
    fn accept_is_read_leniently() {
        let ts = "1.2.840.10008.1.2.1";
        assert!(accepts_stored(None, ts));
        assert!(accepts_stored(Some("*/*"), ts));
        assert!(accepts_stored(
            Some(r#"multipart/related; type="application/dicom""#),
            ts
        ));
        assert!(accepts_stored(
            Some("multipart/related; type=application/dicom; transfer-syntax=*"),
            ts
        ));
        assert!(accepts_stored(
            Some(&format!(
                "multipart/related; type=\"application/dicom\"; transfer-syntax={ts}"
            )),
            ts
        ));
        assert!(!accepts_stored(
            Some(
                "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"
            ),
            ts
        ));
        assert!(!accepts_stored(Some("application/json"), ts));
        assert!(!accepts_stored(
            Some("multipart/related; type=application/octet-stream"),
            ts
        ));
    }
}
