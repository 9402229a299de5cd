//! The study page: everything about one study, an edit form for those who
//! manage studies, and the study's history from the audit trail.

use super::{error_page, manages_studies, render, AssetUrlsRef, HtmlForm, Nav};
use crate::audit;
use crate::login::WebUser;
use crate::WebState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_domain::audit::{ActorKind, AuditFilter};
use lightbox_domain::study::{Metadata, Severity, Study, StudyPatch, ViewerStatus};
use lightbox_domain::user::UserFilter;
use lightbox_domain::{Error, StudyId, UserId};
use serde::Deserialize;
use std::collections::HashMap;

/// History entries shown (newest first).
const HISTORY: u32 = 50;
/// Users offered as assignees (a clinic's readers, not a directory).
const ASSIGNEES: u32 = 200;

pub struct HistoryEntry {
    when: String,
    who: String,
    action: String,
    outcome: String,
}

pub struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "study.html")]
struct StudyPage {
    assets: AssetUrlsRef,
    nav: Nav,
    id: String,
    uid: String,
    description: String,
    severity: &'static str,
    status: &'static str,
    assignee: Option<String>,
    cancelled: bool,
    customer: Option<String>,
    created: String,
    updated: String,
    created_by: String,
    metadata: Vec<(String, String)>,
    metadata_text: String,
    editable: bool,
    /// Whether DICOM images of the study have arrived ("View images" opens them).
    has_images: bool,
    assignees: Vec<Choice>,
    history: Vec<HistoryEntry>,
    error: Option<String>,
    saved: bool,
    /// What the archive holds for the study (none: no images yet).
    images: Option<super::worklist::Images>,
    series: Vec<SeriesCard>,
    /// More series than the page lists.
    series_truncated: bool,
}

/// A series on the study page: what it is, and its thumbnail when it has pixels.
pub struct SeriesCard {
    label: String,
    instances: i64,
    /// `/dicomweb/…/thumbnail` (the web session may read its own organization's studies).
    thumbnail: Option<String>,
}

impl SeriesCard {
    fn of(study_uid: &str, s: &lightbox_store::SeriesOverview) -> SeriesCard {
        let mut label = match s.series_number {
            Some(n) => format!("Series {n}"),
            None => "Series".to_owned(),
        };
        for part in [&s.modality, &s.series_description].into_iter().flatten() {
            if !part.trim().is_empty() {
                label.push_str(" · ");
                label.push_str(part.trim());
            }
        }
        SeriesCard {
            label,
            instances: s.instance_count,
            thumbnail: s.has_images.then(|| {
                format!(
                    "/dicomweb/studies/{study_uid}/series/{}/thumbnail",
                    s.series_instance_uid
                )
            }),
        }
    }
}

/// Series listed on a study page (a CT study has a handful; anything past this
/// is in the viewer).
const SERIES_SHOWN: u32 = 60;

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "study page");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Try again in a moment.",
    )
}

fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Study not found",
        "There is no such study.",
    )
}

async fn load(state: &WebState, user: &WebUser, study_id: &str) -> Result<Study, Response> {
    let id = StudyId::parse(study_id).map_err(|_| not_found())?;
    state
        .store
        .study(user.org_id, &id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)
}

async fn page_for(
    state: &WebState,
    user: &WebUser,
    study: &Study,
    error: Option<String>,
    saved: bool,
) -> Result<StudyPage, Response> {
    let editable = manages_studies(&user.user);
    let users = state
        .store
        .list_users(user.org_id, &UserFilter::default(), ASSIGNEES, None)
        .await
        .map_err(internal)?
        .items;
    let names: HashMap<String, String> = users
        .iter()
        .map(|u| (u.reference.id.to_string(), super::display_name(u)))
        .collect();
    let assigned = study.assigned_to.as_ref().map(|u| u.id.to_string());
    let mut assignees = vec![Choice {
        value: String::new(),
        label: "Unassigned".into(),
        selected: assigned.is_none(),
    }];
    assignees.extend(users.iter().filter(|u| u.is_active).map(|u| Choice {
        value: u.reference.id.to_string(),
        label: super::display_name(u),
        selected: assigned.as_deref() == Some(u.reference.id.as_str()),
    }));
    let has_images = state
        .store
        .study_has_images(user.org_id, &study.study_instance_uid)
        .await
        .map_err(internal)?;
    let filter = AuditFilter {
        resource_id: Some(study.id.to_string()),
        ..AuditFilter::default()
    };
    let events = state
        .store
        .list_audit_events(user.org_id, &filter, HISTORY, None)
        .await
        .map_err(internal)?
        .items;
    let history = events
        .iter()
        .map(|e| HistoryEntry {
            when: super::worklist::when(e.occurred_at),
            who: match (e.actor_kind, e.actor_id.as_deref()) {
                (ActorKind::User, Some(id)) => {
                    names.get(id).cloned().unwrap_or_else(|| id.to_owned())
                }
                (ActorKind::ApiKey, _) => "API key".into(),
                (ActorKind::OAuthClient, _) => "OAuth client".into(),
                (ActorKind::SignedLink, _) => "Signed link".into(),
                (ActorKind::Operator, _) => "Operator".into(),
                (ActorKind::DicomPeer, Some(ae)) => format!("DICOM sender {ae}"),
                (ActorKind::DicomPeer, None) => "DICOM sender".into(),
                (ActorKind::User, None) => "A user".into(),
            },
            action: e.action.clone(),
            outcome: e.outcome.as_str().to_owned(),
        })
        .collect();
    let images = state
        .store
        .dicom_study_summary(user.org_id, &study.study_instance_uid)
        .await
        .map_err(internal)?
        .as_ref()
        .map(super::worklist::Images::of);
    let (series, series_truncated) = state
        .store
        .study_series_overview(user.org_id, &study.study_instance_uid, SERIES_SHOWN)
        .await
        .map_err(internal)?;
    let series = series
        .iter()
        .map(|s| SeriesCard::of(&study.study_instance_uid, s))
        .collect();
    Ok(StudyPage {
        images,
        series,
        series_truncated,
        assets: crate::assets::urls(),
        nav: Nav::of(user),
        id: study.id.to_string(),
        uid: study.study_instance_uid.clone(),
        description: study.description.clone(),
        severity: study.severity.as_str(),
        status: study.viewer_status.as_str(),
        assignee: study
            .assigned_to
            .as_ref()
            .map(|u| format!("{} {}", u.first_name, u.last_name)),
        cancelled: study.is_cancelled,
        customer: study.express_customer_id.clone(),
        created: super::worklist::when(study.created_at),
        updated: super::worklist::when(study.updated_at),
        created_by: match (&study.created_by_user, &study.created_by_api_key) {
            (Some(u), _) => format!("{} {}", u.first_name, u.last_name),
            (None, Some(key)) => format!("API key “{}”", key.description),
            (None, None) => "—".into(),
        },
        metadata: study
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        metadata_text: study
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        editable,
        has_images,
        assignees,
        history,
        error,
        saved,
    })
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn show(
    State(state): State<WebState>,
    user: WebUser,
    Path(study_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ShowQuery>,
) -> Response {
    let study = match load(&state, &user, &study_id).await {
        Ok(study) => study,
        Err(page) => return page,
    };
    let saved = query.saved.is_some();
    let page = match page_for(&state, &user, &study, None, saved).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    // Recorded before the page leaves: the read is in the history it shows next time.
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &user.user.reference.id,
        "study.read",
        Some(study.id.as_str()),
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
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct EditForm {
    description: String,
    severity: String,
    status: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    metadata: String,
}

fn patch_of(form: &EditForm) -> Result<StudyPatch, Error> {
    let mut metadata = Metadata::new();
    for line in form
        .metadata
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::invalid(
                "metadata",
                format!("metadata lines are key=value; `{line}` has no `=`"),
            )
        })?;
        metadata.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let patch = StudyPatch {
        description: Some(form.description.trim().to_owned()),
        severity: Some(Severity::parse(&form.severity)?),
        viewer_status: Some(ViewerStatus::parse(&form.status)?),
        assigned_to: Some(match form.assignee.as_str() {
            "" => None,
            id => Some(UserId::parse_for("assignee", id)?),
        }),
        metadata: Some(Some(metadata)),
    };
    patch.validate()?;
    Ok(patch)
}

pub async fn edit(
    State(state): State<WebState>,
    user: WebUser,
    Path(study_id): Path<String>,
    HtmlForm(form): HtmlForm<EditForm>,
) -> Response {
    let study = match load(&state, &user, &study_id).await {
        Ok(study) => study,
        Err(page) => return page,
    };
    let me = user.user.reference.id.clone();
    if !manages_studies(&user.user) {
        audit::record(
            &state,
            &user.origin,
            user.org_id,
            &me,
            "study.update",
            Some(study.id.as_str()),
            403,
        )
        .await;
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only people who manage studies may edit them.",
        );
    }
    let result = match patch_of(&form) {
        Ok(patch) => {
            state
                .store
                .update_study(user.org_id, &study.id, &patch)
                .await
        }
        Err(e) => Err(e),
    };
    let status = match &result {
        Ok(_) => StatusCode::SEE_OTHER,
        Err(Error::Invalid { .. } | Error::Unprocessable(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        Err(Error::NotFound(_)) => return not_found(),
        Err(e) => return internal(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        "study.update",
        Some(study.id.as_str()),
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
        Ok(_) => Redirect::to(&format!("/ui/studies/{}?saved=1", study.id)).into_response(),
        Err(e) => match page_for(&state, &user, &study, Some(e.to_string()), false).await {
            Ok(page) => render(status, &page),
            Err(response) => response,
        },
    }
}
