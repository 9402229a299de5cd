//! Front-desk intake (first slice): find a patient's or a coverage's card
//! images, see each one's version, status and who changed it last, and
//! deactivate one. Deactivation takes the version the page showed, so a page
//! gone stale (someone changed the image meanwhile) is refused as the Images
//! API refuses a stale version.
//!
//! Uploading a card image is the Images API's flow, driven by app.js: create
//! the image (PENDING) here, PUT the file straight to its upload link (the
//! API's `signed_url`: Lightbox's blob route or S3) with a progress bar, then
//! mark it UPLOADED here, which verifies the bytes as the API does. These two
//! endpoints answer JSON (`{"error": …}` on failure) since a script calls them.

use super::{error_page, render, AssetUrlsRef, HtmlForm, Nav};
use crate::audit;
use crate::login::WebUser;
use crate::WebState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use lightbox_domain::credentials::random_secret;
use lightbox_domain::image::{
    parse_coverage_id, CoverageAssociation, CoverageImageSide, Image, ImageFilter, ImageSortField,
    ImageStatus, MutableImage, PatientAssociation, SortDirection,
};
use lightbox_domain::{Error, ImageId};
use lightbox_store::ImageSort;
use serde::Deserialize;

/// Images listed for one search (a patient or a coverage has a handful).
const LISTED: u32 = 100;

#[derive(Deserialize, Default)]
pub struct IntakeQuery {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    coverage: String,
}

impl IntakeQuery {
    fn list_url(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("patient", self.patient.trim()),
            ("coverage", self.coverage.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        match serde_urlencoded::to_string(pairs).unwrap_or_default() {
            q if q.is_empty() => "/ui/intake".into(),
            q => format!("/ui/intake?{q}"),
        }
    }
}

pub struct ImageRow {
    id: String,
    display_name: String,
    file_name: String,
    file_type: String,
    card: String,
    patient: String,
    status: &'static str,
    version: i64,
    updated: String,
    updated_by: String,
    /// A signed read link when the image has verified image bytes (not PDFs).
    thumbnail: Option<String>,
}

#[derive(Template)]
#[template(path = "intake.html")]
struct IntakePage {
    assets: AssetUrlsRef,
    nav: Nav,
    patient: String,
    coverage: String,
    searched: bool,
    images: Vec<ImageRow>,
    back: String,
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "intake page");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Try again in a moment.",
    )
}

pub async fn show(
    State(state): State<WebState>,
    user: WebUser,
    headers: HeaderMap,
    query: Result<Query<IntakeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Search not understood",
            "The search could not be read.",
        );
    };
    let patient = Some(query.patient.trim()).filter(|p| !p.is_empty());
    let coverage = match Some(query.coverage.trim()).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match uuid::Uuid::try_parse(c) {
            Ok(id) => Some(id),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Search not understood",
                    &format!("A coverage id is a UUID; `{c}` is not one."),
                )
            }
        },
    };
    let searched = patient.is_some() || coverage.is_some();
    let mut images = Vec::new();
    if searched {
        let filter = ImageFilter {
            patient_id: patient.map(str::to_owned),
            coverage_id: coverage,
            ..ImageFilter::default()
        };
        let sort = ImageSort {
            field: ImageSortField::UpdatedAt,
            direction: SortDirection::Desc,
        };
        images = match state
            .store
            .search_images(user.org_id, &filter, sort, LISTED)
            .await
        {
            Ok(found) => found,
            Err(e) => return internal(e),
        };
        if !audit::record(
            &state,
            &user.origin,
            user.org_id,
            &user.user.reference.id,
            "image.search",
            None,
            200,
        )
        .await
        {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The audit trail cannot be written right now. Try again in a moment.",
            );
        }
    }
    let mut thumbnails = Vec::with_capacity(images.len());
    for image in &images {
        let shows = image
            .blob
            .as_ref()
            .is_some_and(|b| b.content_type.starts_with("image/"));
        thumbnails.push(match shows {
            true => upload_link(&state, &headers, image).await.ok(),
            false => None,
        });
    }
    render(
        StatusCode::OK,
        &IntakePage {
            assets: crate::assets::urls(),
            nav: Nav::of(&user),
            patient: query.patient.clone(),
            coverage: query.coverage.clone(),
            searched,
            images: images
                .iter()
                .zip(thumbnails)
                .map(|(i, thumbnail)| ImageRow {
                    id: i.id.to_string(),
                    display_name: i.fields.display_name.clone(),
                    file_name: i.fields.file_name.clone(),
                    file_type: i.fields.file_type.clone(),
                    card: i
                        .fields
                        .coverage
                        .as_ref()
                        .map(|c| format!("{} ({})", c.id, c.side.as_str().to_lowercase()))
                        .unwrap_or_else(|| "—".into()),
                    patient: i
                        .fields
                        .patient
                        .as_ref()
                        .map(|p| p.id.clone())
                        .unwrap_or_else(|| "—".into()),
                    status: i.fields.status.as_str(),
                    version: i.version,
                    updated: super::worklist::when(i.updated_at),
                    updated_by: i.updating_user_id.clone(),
                    thumbnail,
                })
                .collect(),
            back: query.list_url(),
        },
    )
}

#[derive(Deserialize)]
pub struct DeactivateForm {
    version: i64,
    #[serde(default)]
    back: String,
}

pub async fn deactivate(
    State(state): State<WebState>,
    user: WebUser,
    Path(image_id): Path<String>,
    HtmlForm(form): HtmlForm<DeactivateForm>,
) -> Response {
    let Ok(id) = ImageId::parse(&image_id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Image not found",
            "There is no such image.",
        );
    };
    let me = user.user.reference.id.clone();
    // Recorded as the image's `updating_user_id`, as the API records its client.
    let result = state
        .store
        .deactivate_image(user.org_id, &id, form.version, me.as_str())
        .await;
    let status = match &result {
        Ok(()) => StatusCode::SEE_OTHER,
        Err(Error::NotFound(_)) => StatusCode::NOT_FOUND,
        Err(Error::VersionConflict { .. }) => StatusCode::CONFLICT,
        Err(e) => return internal(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        "image.deactivate",
        Some(&image_id),
        status.as_u16(),
    )
    .await
    {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The audit trail cannot be written right now. Try again in a moment.",
        );
    }
    match result {
        Ok(()) => {
            let back = if form.back.starts_with("/ui/intake") { form.back } else { "/ui/intake".into() };
            Redirect::to(&back).into_response()
        }
        Err(Error::NotFound(_)) => error_page(StatusCode::NOT_FOUND, "Image not found", "There is no such image."),
        Err(_) => error_page(
            StatusCode::CONFLICT,
            "Image changed meanwhile",
            "Someone changed this image since the page was shown, so it was not deactivated. Go back, reload, and check it again.",
        ),
    }
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn domain_json_error(e: Error) -> Response {
    let status = match &e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::VersionConflict { .. } => StatusCode::CONFLICT,
        Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Gone(_) => StatusCode::GONE,
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "intake upload");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "something went wrong; try again",
            );
        }
    };
    json_error(status, e.to_string())
}

/// The base of links for this request: the configured public URL, else its Host.
fn base_url(state: &WebState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn upload_link(
    state: &WebState,
    headers: &HeaderMap,
    image: &Image,
) -> Result<String, Response> {
    let links = lightbox_api::images::ImageLinks {
        signer: &state.signer,
        blobs: &state.blobs,
        ttl: state.config.signed_url_ttl,
        base: base_url(state, headers),
    };
    lightbox_api::images::image_link(&links, image)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "an image upload link");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload link could not be made; try again",
            )
        })
}

#[derive(Deserialize)]
pub struct NewImageForm {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    coverage: String,
    side: String,
    file_name: String,
    file_type: String,
}

/// Creates a PENDING image for a card side and answers with its upload link.
pub async fn create(
    State(state): State<WebState>,
    user: WebUser,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<NewImageForm>,
) -> Response {
    let coverage = match form.coverage.trim() {
        "" => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "a card image needs the coverage id",
            )
        }
        c => match parse_coverage_id("coverage", c) {
            Ok(id) => id,
            Err(e) => return domain_json_error(e),
        },
    };
    let side = match CoverageImageSide::parse(&form.side) {
        Ok(side) => side,
        Err(e) => return domain_json_error(e),
    };
    if lightbox_domain::image::FileKind::from_file_type(&form.file_type).is_none() {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "`{}` files cannot be stored; use PNG, JPEG, GIF, WebP, HEIC, TIFF, BMP or PDF",
                form.file_type
            ),
        );
    }
    let side_name = if side == CoverageImageSide::Front {
        "front"
    } else {
        "back"
    };
    let fields = MutableImage {
        file_name: form.file_name.clone(),
        display_name: format!("Insurance card ({side_name})"),
        file_type: form.file_type.clone(),
        status: ImageStatus::Pending,
        coverage: Some(CoverageAssociation { id: coverage, side }),
        patient: Some(form.patient.trim())
            .filter(|p| !p.is_empty())
            .map(|p| PatientAssociation {
                id: p.to_owned(),
                notes: None,
            }),
    };
    let me = user.user.reference.id.clone();
    let image = match state
        .store
        .create_image(user.org_id, me.as_str(), &fields, &random_secret())
        .await
    {
        Ok(image) => image,
        Err(e) => return domain_json_error(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        "image.create",
        Some(&image.id.to_string()),
        200,
    )
    .await
    {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written right now",
        );
    }
    let link = match upload_link(&state, &headers, &image).await {
        Ok(link) => link,
        Err(response) => return response,
    };
    Json(serde_json::json!({
        "id": image.id.to_string(),
        "version": image.version,
        "upload_url": link,
        "max_bytes": state.blobs.max_size(),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct UploadedForm {
    version: i64,
}

/// Marks an image UPLOADED once its bytes are there and verified.
pub async fn uploaded(
    State(state): State<WebState>,
    user: WebUser,
    Path(image_id): Path<String>,
    HtmlForm(form): HtmlForm<UploadedForm>,
) -> Response {
    let Ok(id) = ImageId::parse(&image_id) else {
        return json_error(StatusCode::NOT_FOUND, "there is no such image");
    };
    let image = match state.store.image(user.org_id, &id).await {
        Ok(Some(image)) => image,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "there is no such image"),
        Err(e) => return domain_json_error(e.into()),
    };
    if image.version != form.version {
        return domain_json_error(lightbox_domain::image::stale_version(
            &id,
            form.version,
            image.version,
        ));
    }
    let blob =
        match lightbox_api::images::verified_upload(&state.blobs, &image, &image.fields.file_type)
            .await
        {
            Ok(blob) => blob,
            Err(e) => return json_error(e.status, e.message),
        };
    let fields = MutableImage {
        status: ImageStatus::Uploaded,
        ..image.fields.clone()
    };
    let me = user.user.reference.id.clone();
    let result = state
        .store
        .update_image(
            user.org_id,
            &id,
            form.version,
            me.as_str(),
            &fields,
            blob.as_ref(),
        )
        .await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(Error::VersionConflict { .. }) => StatusCode::CONFLICT,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        "image.update",
        Some(&image_id),
        status.as_u16(),
    )
    .await
    {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written right now",
        );
    }
    match result {
        Ok(image) => Json(serde_json::json!({ "id": image.id.to_string(), "version": image.version, "status": "UPLOADED" })).into_response(),
        Err(e) => {
            if let Some(blob) = &blob {
                // Lost a race: nothing points at this copy.
                let _ = state.blobs.delete(&blob.key).await;
            }
            domain_json_error(e)
        }
    }
}
