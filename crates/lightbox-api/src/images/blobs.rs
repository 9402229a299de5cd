//! Image bytes: the `signed_url` of an image, and (local backend) the routes
//! it points at. A link is an HMAC-signed token bound to one purpose
//! (upload or read), one organization, one image and (for uploads) the
//! image's upload nonce or (for reads) its stored object; it expires after
//! the signed-URL TTL. Anything else — altered, expired, used for another
//! image — is a 403.

use super::handlers::expected_kind;
use crate::audit::{AuditActor, AuditSlot};
use crate::error::ApiError;
use crate::extract::{PathParam, QueryMap};
use crate::{public_base, AppState};
use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::StreamExt;
use lightbox_blob::{BlobError, BlobStore, Claims, SignError, UrlSigner};
use lightbox_domain::audit::ActorKind;
use lightbox_domain::image::Image;
use lightbox_domain::{Error, ImageId, OrgId, Timestamp};
use std::time::Duration;

const IMAGE_UPLOAD: &str = "image-upload";
const IMAGE_READ: &str = "image-read";

/// Maps storage failures to the caller's share of the blame.
pub(super) fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        ),
        BlobError::WrongType { .. } => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            e.to_string(),
        ),
        BlobError::Missing => Error::NotFound(e.to_string()).into(),
        BlobError::Interrupted(_) => ApiError::bad_request(e.to_string()),
        // Nothing was recorded: the caller can retry once the storage is back.
        BlobError::Storage(detail) => {
            tracing::error!(error = %detail, "blob storage failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "image storage is unavailable; nothing was changed, try again later",
            )
        }
    }
}

/// The link for an image: an upload link while it waits for its bytes (one
/// upload), afterwards a read link.
pub(super) async fn signed_url(
    state: &AppState,
    headers: &HeaderMap,
    image: &Image,
) -> Result<String, ApiError> {
    let links = ImageLinks {
        signer: &state.signer,
        blobs: &state.blobs,
        ttl: state.config.signed_url_ttl,
        base: public_base(&state.config, headers),
    };
    image_link(&links, image).await.map_err(blob_error)
}

/// What an image link is made from, so that the web app (which has no
/// `AppState`) hands out the same links as the API.
pub struct ImageLinks<'a> {
    pub signer: &'a UrlSigner,
    pub blobs: &'a BlobStore,
    pub ttl: Duration,
    /// The server's base URL, for the local backend's links.
    pub base: String,
}

/// An image's `signed_url`: S3 presigned when the store is S3, else a signed
/// link to `/blobs/v1/images/{id}`.
pub async fn image_link(links: &ImageLinks<'_>, image: &Image) -> Result<String, BlobError> {
    let ttl = links.ttl;
    let org = image.org_id.to_string();
    let id = image.id.to_string();
    let (purpose, subject) = if image.accepts_upload() {
        let key = BlobStore::upload_key(&org, &id, &image.upload_nonce);
        if let Some(url) = links.blobs.presign(Method::PUT, &key, ttl).await? {
            return Ok(url);
        }
        (IMAGE_UPLOAD, format!("{id}\t{}", image.upload_nonce))
    } else {
        let key = image.blob.as_ref().map_or("", |b| b.key.as_str());
        if !key.is_empty() {
            if let Some(url) = links.blobs.presign(Method::GET, key, ttl).await? {
                return Ok(url);
            }
        }
        // No bytes (e.g. a FAILED image): the link answers 404 until there are.
        (IMAGE_READ, format!("{id}\t{key}"))
    };
    let token = links.signer.sign(&Claims {
        purpose: purpose.into(),
        org,
        subject,
        expires_at_ms: Timestamp::now()
            .plus_seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
            .millis(),
    });
    Ok(format!("{}/blobs/v1/images/{id}?token={token}", links.base))
}

/// Checks a link's token against the image in its path; returns the
/// organization and the bound value (upload nonce or object key).
fn verify_link(
    state: &AppState,
    query: &QueryMap,
    path_id: &str,
    purpose: &str,
) -> Result<(OrgId, ImageId, String), ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", m);
    let token = query
        .non_empty("token")
        .ok_or_else(|| forbidden("this link is not valid"))?;
    let claims = match state
        .signer
        .verify(token, purpose, Timestamp::now().millis())
    {
        Ok(claims) => claims,
        Err(SignError::Expired) => {
            return Err(forbidden(
                "this link has expired: get the image again for a fresh signed_url",
            ))
        }
        Err(SignError::Invalid) => return Err(forbidden("this link is not valid")),
    };
    let (image, bound) = claims
        .subject
        .split_once('\t')
        .ok_or_else(|| forbidden("this link is not valid"))?;
    if image != path_id {
        return Err(forbidden("this link is for another object"));
    }
    let org = OrgId::parse(&claims.org).map_err(|_| forbidden("this link is not valid"))?;
    let id = ImageId::parse(image).map_err(|_| forbidden("this link is not valid"))?;
    Ok((org, id, bound.to_owned()))
}

/// Attributes a blob transfer to the signed link that authorized it.
fn audit_link(slot: Option<&AuditSlot>, org: OrgId, id: &ImageId) {
    if let Some(slot) = slot {
        slot.set(AuditActor {
            org_id: org,
            kind: ActorKind::SignedLink,
            id: Some(id.to_string()),
        });
    }
}

/// How much of a refused upload's body is read and discarded before answering.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// `PUT /blobs/v1/images/{id}?token=…`: the one upload of an image's bytes.
#[utoipa::path(put, path = "/blobs/v1/images/{id}", operation_id = "uploadImageFile", tag = "image files",
    params(("id" = String, Path, format = Uuid), ("token" = String, Query, description = "From the image's `signed_url`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file; its type must match the image's file_type"),
    responses((status = 200, description = "Stored and verified"),
        (status = 403, description = "The link is not valid, expired or for another object", body = crate::openapi::ImagesError),
        (status = 409, description = "The image takes no (more) upload", body = crate::openapi::ImagesError),
        (status = 413, description = "Larger than the upload cap", body = crate::openapi::ImagesError),
        (status = 415, description = "Not the file_type's kind of file", body = crate::openapi::ImagesError)))]
pub async fn upload(
    State(state): State<AppState>,
    PathParam(path_id): PathParam<String>,
    query: QueryMap,
    slot: Option<Extension<AuditSlot>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut stream = body.into_data_stream();
    let result = receive(&state, &path_id, &query, slot, &headers, &mut stream).await;
    // Most clients send the whole body before they read the answer (no
    // `Expect: 100-continue`): answering a refused upload at once would reach
    // them as a reset connection instead of the 413/415/403, so the rest of
    // the body is read and discarded first, within bounds. With `Expect`, the
    // client waits for the answer and sends nothing more.
    if result.is_err() && !headers.contains_key(header::EXPECT) {
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
    }
    result
}

async fn receive(
    state: &AppState,
    path_id: &str,
    query: &QueryMap,
    slot: Option<Extension<AuditSlot>>,
    headers: &HeaderMap,
    stream: &mut BodyDataStream,
) -> Result<Response, ApiError> {
    let (org, id, nonce) = verify_link(state, query, path_id, IMAGE_UPLOAD)?;
    audit_link(slot.as_deref(), org, &id);
    let image = state
        .store
        .image(org, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("image {id} not found")))?;
    if image.upload_nonce != nonce {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this link is for another object",
        ));
    }
    if !image.accepts_upload() {
        return Err(Error::Conflict(format!(
            "image {id} takes no upload: it has its file already or is no longer PENDING"
        ))
        .into());
    }
    let kind = expected_kind(&image.fields.file_type)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.blobs.max_size()) {
        return Err(blob_error(BlobError::TooLarge {
            max: state.blobs.max_size(),
        }));
    }
    let key = BlobStore::final_key(&org.to_string(), &id.to_string());
    let blob = state
        .blobs
        .write_local(&key, stream, kind)
        .await
        .map_err(blob_error)?;
    match state.store.attach_image_blob(org, &id, &nonce, &blob).await {
        Ok(true) => {
            crate::observability::blob_uploaded(blob.size);
            Ok(StatusCode::OK.into_response())
        }
        Ok(false) => {
            let _ = state.blobs.delete(&key).await;
            Err(Error::Conflict(format!("image {id} has its file already")).into())
        }
        Err(e) => {
            let _ = state.blobs.delete(&key).await;
            Err(e.into())
        }
    }
}

/// `GET /blobs/v1/images/{id}?token=…`: streams the verified bytes.
#[utoipa::path(get, path = "/blobs/v1/images/{id}", operation_id = "downloadImageFile", tag = "image files",
    params(("id" = String, Path, format = Uuid), ("token" = String, Query, description = "From the image's `signed_url`")),
    responses((status = 200, description = "The file, as its verified type", content((Vec<u8> = "image/*"), (Vec<u8> = "application/pdf"))),
        (status = 403, description = "The link is not valid, expired or for another object", body = crate::openapi::ImagesError)))]
pub async fn download(
    State(state): State<AppState>,
    PathParam(path_id): PathParam<String>,
    query: QueryMap,
    slot: Option<Extension<AuditSlot>>,
) -> Result<Response, ApiError> {
    let (org, id, key) = verify_link(&state, &query, &path_id, IMAGE_READ)?;
    audit_link(slot.as_deref(), org, &id);
    let no_file = || ApiError::from(Error::NotFound(format!("image {id} has no file")));
    let image = state
        .store
        .image(org, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("image {id} not found")))?;
    let blob = image
        .blob
        .filter(|b| !key.is_empty() && b.key == key)
        .ok_or_else(no_file)?;
    let (file, len) = state
        .blobs
        .open_local(&blob.key)
        .await
        .map_err(blob_error)?;
    crate::observability::blob_downloaded(len);
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        lightbox_blob::READ_BUFFER,
    ));
    let content_type = HeaderValue::from_str(&blob.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        body,
    )
        .into_response())
}
