//! Front-desk intake (first slice): find a patient's or a coverage's card
//! images, see each one's version, status and who changed it last, and
//! deactivate one. Deactivation takes the version the page showed, so a page
//! gone stale (someone changed the image meanwhile) is refused as the Images
//! API refuses a stale version. Uploading from the browser is not built yet.

use super::{error_page, render, AssetUrlsRef, HtmlForm, Nav};
use crate::audit;
use crate::login::WebUser;
use crate::WebState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_domain::image::{ImageFilter, ImageSortField, SortDirection};
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
                .map(|i| ImageRow {
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
