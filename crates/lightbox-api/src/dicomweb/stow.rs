//! STOW-RS: `POST /dicomweb/studies[/{study}]` with a `multipart/related`
//! body of Part 10 parts (PS3.18 10.5). 200 all stored; 202 some failed or
//! had warnings; 409 none stored; 415 not multipart/related DICOM; 413 a
//! body over the limit; 400 a malformed body.

use super::{path_uid, DicomwebCaller};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lightbox_dicom::dicomweb::multipart::{related_dicom_boundary, RelatedError};
use lightbox_dicom::dicomweb::stow::{self, StowError};
use lightbox_dicom::Delivery;
use lightbox_domain::dicom::DicomSource;

pub async fn store(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    stow_into(state, caller, None, headers, body).await
}

pub async fn store_in_study(
    State(state): State<AppState>,
    caller: DicomwebCaller,
    Path(study): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let study = path_uid("StudyInstanceUID", &study)?;
    stow_into(state, caller, Some(study), headers, body).await
}

async fn stow_into(
    state: AppState,
    caller: DicomwebCaller,
    expected_study: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Storing needs the organization's key; a study link only reads.
    let Some(api_key_id) = caller.api_key_id else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "storing instances needs the organization's Viewer API key".to_owned(),
        ));
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let boundary = related_dicom_boundary(content_type).map_err(|e| match e {
        RelatedError::Unsupported(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            e.to_string(),
        ),
        RelatedError::NoBoundary => ApiError::bad_request(e.to_string()),
    })?;
    let max = state.config.dicom.max_stow_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let delivery = Delivery {
        org_id: caller.org_id,
        source: DicomSource::Stow { api_key_id },
        expected_study,
    };
    let results = stow::store(
        &state.ingest,
        &delivery,
        body.into_data_stream(),
        &boundary,
        max,
    )
    .await
    .map_err(|e| match e {
        StowError::TooLarge { max } => too_large(max),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let base = format!("{}/dicomweb", crate::public_base(&state.config, &headers));
    let status = StatusCode::from_u16(stow::http_status(&results)).unwrap_or(StatusCode::OK);
    let body = stow::response(&results, &base);
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    Ok(response)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than the {max} bytes allowed"),
    )
}
