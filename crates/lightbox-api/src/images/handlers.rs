//! `/images/v1` handlers.

use super::blobs::{blob_error, signed_url};
use super::wire::{ImageJson, MutableImageBody};
use super::ImagesCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParam, QueryMap};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lightbox_blob::{BlobError, BlobStore};
use lightbox_domain::credentials::random_secret;
use lightbox_domain::image::{
    parse_coverage_id, FileKind, Image, ImageFilter, ImageSortField, ImageStatus, SortDirection,
    StoredBlob,
};
use lightbox_domain::{Error, ImageId, Timestamp};
use lightbox_store::ImageSort;

/// `get_multi` answers with a bare array (the SDK has no paging), so it is capped.
pub const MAX_SEARCH_RESULTS: u32 = 1000;
const DEFAULT_SCAN_RESULTS: u32 = 100;
const MAX_SCAN_RESULTS: u32 = 1000;

type Result<T> = std::result::Result<T, ApiError>;

/// Ids are UUIDs: anything else cannot name an image, so it is a 404 like an unknown one.
fn image_id(raw: &str) -> Result<ImageId> {
    ImageId::parse(raw).map_err(|_| Error::NotFound(format!("image {raw} not found")).into())
}

fn not_found(id: &ImageId) -> ApiError {
    Error::NotFound(format!("image {id} not found")).into()
}

fn version(raw: &str) -> Result<i64> {
    raw.parse().map_err(|_| {
        Error::invalid(
            "version",
            format!("version must be the image's current version number, got `{raw}`"),
        )
        .into()
    })
}

async fn reply(state: &AppState, headers: &HeaderMap, image: &Image) -> Result<Response> {
    let url = signed_url(state, headers, image).await?;
    // Names the image in the audit trail, also for a create (no id in the path).
    Ok(crate::audit::about(
        image.id.to_string(),
        Json(ImageJson::new(image, url)).into_response(),
    ))
}

async fn replies(state: &AppState, headers: &HeaderMap, images: &[Image]) -> Result<Response> {
    let mut urls = Vec::with_capacity(images.len());
    for image in images {
        urls.push(signed_url(state, headers, image).await?);
    }
    let body: Vec<ImageJson> = images
        .iter()
        .zip(urls)
        .map(|(image, url)| ImageJson::new(image, url))
        .collect();
    Ok(Json(body).into_response())
}

fn no_upload_yet() -> ApiError {
    Error::Unprocessable(
        "no verified file for this image yet: PUT the bytes to its signed_url while it is \
         PENDING, then mark it UPLOADED"
            .into(),
    )
    .into()
}

#[utoipa::path(post, path = "/images/v1", operation_id = "createImage", tag = "images", security(("oauth2" = [])),
    request_body = super::wire::MutableImageBody,
    responses((status = 200, description = "The new image (version 1); PUT its file to `signed_url`", body = super::wire::ImageJson),
        (status = 409, description = "The coverage already has an active image for that side", body = crate::openapi::ImagesError),
        (status = 422, description = "Status UPLOADED before any file", body = crate::openapi::ImagesError)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ImagesCaller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MutableImageBody>,
) -> Result<Response> {
    let fields = body.into_domain()?;
    if fields.status == ImageStatus::Uploaded {
        return Err(no_upload_yet());
    }
    let image = state
        .store
        .create_image(caller.org_id, caller.actor(), &fields, &random_secret())
        .await?;
    reply(&state, &headers, &image).await
}

#[utoipa::path(get, path = "/images/v1/{id}", operation_id = "getImage", tag = "images", security(("oauth2" = [])),
    params(("id" = String, Path, format = Uuid, description = "The image's id")),
    responses((status = 200, description = "The image", body = super::wire::ImageJson)))]
pub async fn get(
    State(state): State<AppState>,
    caller: ImagesCaller,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
) -> Result<Response> {
    let id = image_id(&id)?;
    let image = state
        .store
        .image(caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    reply(&state, &headers, &image).await
}

#[utoipa::path(put, path = "/images/v1/{id}/{version}", operation_id = "updateImage", tag = "images", security(("oauth2" = [])),
    params(("id" = String, Path, format = Uuid, description = "The image's id"),
        ("version" = String, Path, description = "The image's current version")),
    request_body = super::wire::MutableImageBody,
    responses((status = 200, description = "The image at its next version", body = super::wire::ImageJson),
        (status = 409, description = "`version` is not the current version", body = crate::openapi::ImagesError),
        (status = 415, description = "No file can be verified for this file_type", body = crate::openapi::ImagesError),
        (status = 422, description = "Status UPLOADED before any file, or a file_type change after it", body = crate::openapi::ImagesError)))]
pub async fn update(
    State(state): State<AppState>,
    caller: ImagesCaller,
    headers: HeaderMap,
    PathParam((id, given)): PathParam<(String, String)>,
    JsonBody(body): JsonBody<MutableImageBody>,
) -> Result<Response> {
    let id = image_id(&id)?;
    let given = version(&given)?;
    let fields = body.into_domain()?;
    let current = state
        .store
        .image(caller.org_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if current.version != given {
        return Err(lightbox_domain::image::stale_version(&id, given, current.version).into());
    }
    if let Some(blob) = &current.blob {
        let kind = FileKind::from_file_type(&fields.file_type).map(FileKind::media_type);
        if kind != Some(blob.content_type.as_str()) {
            return Err(Error::Unprocessable(format!(
                "the uploaded file is {}: file_type cannot change to `{}`",
                blob.content_type, fields.file_type
            ))
            .into());
        }
    }
    let promoted = if fields.status == ImageStatus::Uploaded {
        verified_upload(&state.blobs, &current, &fields.file_type).await?
    } else {
        None
    };
    let updated = state
        .store
        .update_image(
            caller.org_id,
            &id,
            given,
            caller.actor(),
            &fields,
            promoted.as_ref(),
        )
        .await;
    let image = match updated {
        Ok(image) => {
            if let Some(blob) = &promoted {
                crate::observability::blob_uploaded(blob.size);
            }
            image
        }
        Err(e) => {
            if let Some(blob) = &promoted {
                // Lost a race: nothing points at this copy.
                let _ = state.blobs.delete(&blob.key).await;
            }
            return Err(e.into());
        }
    };
    reply(&state, &headers, &image).await
}

/// The bytes that let `image` be marked UPLOADED, when it has none recorded
/// yet: on S3 the client uploaded straight to the bucket, so they are checked
/// and moved into place now (the caller stores the returned blob, or deletes
/// it if the update loses a race). On the local backend the upload route
/// already verified and recorded them, so none recorded means none sent.
/// Shared with the web app's intake page.
pub async fn verified_upload(
    blobs: &BlobStore,
    image: &Image,
    file_type: &str,
) -> Result<Option<StoredBlob>> {
    if image.blob.is_some() {
        return Ok(None);
    }
    if blobs.is_local() {
        return Err(no_upload_yet());
    }
    let kind = expected_kind(file_type)?;
    let org = image.org_id.to_string();
    let upload_key = BlobStore::upload_key(&org, &image.id.to_string(), &image.upload_nonce);
    let final_key = BlobStore::final_key(&org, &image.id.to_string());
    blobs
        .promote_s3_upload(&upload_key, &final_key, kind)
        .await
        .map(Some)
        .map_err(|e| match e {
            BlobError::Missing => no_upload_yet(),
            other => blob_error(other),
        })
}

/// The kind uploads must match; a `file_type` Lightbox cannot verify takes no bytes.
pub(super) fn expected_kind(file_type: &str) -> Result<FileKind> {
    FileKind::from_file_type(file_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "file_type `{file_type}` cannot be verified, so no file can be stored for it; \
                 supported: PNG, JPEG, GIF, WebP, HEIC/HEIF, TIFF, BMP and PDF, as media types \
                 (image/png) or extensions (png)"
            ),
        )
    })
}

#[utoipa::path(delete, path = "/images/v1/{id}/{version}", operation_id = "deactivateImage", tag = "images", security(("oauth2" = [])),
    params(("id" = String, Path, format = Uuid, description = "The image's id"),
        ("version" = String, Path, description = "The image's current version")),
    responses((status = 204, description = "Deactivated"),
        (status = 409, description = "`version` is not the current version", body = crate::openapi::ImagesError)))]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: ImagesCaller,
    PathParam((id, given)): PathParam<(String, String)>,
) -> Result<Response> {
    let id = image_id(&id)?;
    let given = version(&given)?;
    state
        .store
        .deactivate_image(caller.org_id, &id, given, caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/images/v1", operation_id = "searchImages", tag = "images", security(("oauth2" = [])),
    params(("patient_id" = Option<String>, Query), ("coverage_id" = Option<String>, Query, format = Uuid),
        ("file_type" = Option<String>, Query), ("patient_notes" = Option<String>, Query),
        ("sort_field" = Option<ImageSortField>, Query), ("sort_direction" = Option<SortDirection>, Query)),
    responses((status = 200, description = "Matching active images (at most 1000)", body = Vec<super::wire::ImageJson>)))]
pub async fn search(
    State(state): State<AppState>,
    caller: ImagesCaller,
    headers: HeaderMap,
    query: QueryMap,
) -> Result<Response> {
    let text = |key: &str| query.non_empty(key).map(str::to_owned);
    let filter = ImageFilter {
        patient_id: text("patient_id"),
        coverage_id: query
            .non_empty("coverage_id")
            .map(|c| parse_coverage_id("coverage_id", c))
            .transpose()?,
        file_type: text("file_type"),
        patient_notes: text("patient_notes"),
    };
    let sort = ImageSort {
        field: query
            .non_empty("sort_field")
            .map(ImageSortField::parse)
            .transpose()?
            .unwrap_or(ImageSortField::UpdatedAt),
        direction: query
            .non_empty("sort_direction")
            .map(SortDirection::parse)
            .transpose()?
            .unwrap_or(SortDirection::Desc),
    };
    let images = state
        .store
        .search_images(caller.org_id, &filter, sort, MAX_SEARCH_RESULTS)
        .await?;
    replies(&state, &headers, &images).await
}

/// `GET /images/v1/updates/scan?since=…[&maxResults=…]`, like the other
/// pre-encounter resources' scans: deactivated images included, oldest
/// change first, `since` inclusive.
#[utoipa::path(get, path = "/images/v1/updates/scan", operation_id = "scanImages", tag = "images", security(("oauth2" = [])),
    params(("since" = String, Query, format = DateTime, description = "RFC 3339; inclusive"),
        ("maxResults" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 100")),
    responses((status = 200, description = "Images changed since `since`, oldest change first, deactivated included", body = Vec<super::wire::ImageJson>)))]
pub async fn scan(
    State(state): State<AppState>,
    caller: ImagesCaller,
    headers: HeaderMap,
    query: QueryMap,
) -> Result<Response> {
    let since = query.non_empty("since").ok_or_else(|| {
        Error::invalid(
            "since",
            "since is required: an RFC 3339 time, e.g. 2024-05-01T00:00:00Z",
        )
    })?;
    let since = Timestamp::parse_rfc3339(since).ok_or_else(|| {
        Error::invalid(
            "since",
            format!("since must be an RFC 3339 time with an offset, got `{since}`"),
        )
    })?;
    let limit = match query.non_empty("maxResults") {
        None => DEFAULT_SCAN_RESULTS,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_SCAN_RESULTS).contains(n))
            .ok_or_else(|| {
                Error::invalid(
                    "maxResults",
                    format!("maxResults must be 1 to {MAX_SCAN_RESULTS}, got `{raw}`"),
                )
            })?,
    };
    let images = state.store.scan_images(caller.org_id, since, limit).await?;
    replies(&state, &headers, &images).await
}
