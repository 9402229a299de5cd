//! The pages signed Viewer links open: a study (reroute links) or an ephemeral
//! session, shown without other credentials while the link's signature and
//! expiry hold.
//!
//! Opening a valid link leaves a capability cookie in the browser
//! ([`crate::capability`]) that lets the viewer read the link's studies, and
//! only those, until the link expires. The link then opens OHIF on those
//! studies when it is installed, else Lightbox's built-in page: the link's
//! details above the studies' rendered frames ([`crate::builtin_viewer`]).

use crate::audit::{about, AuditActor, AuditSlot};
use crate::builtin_viewer::{self, escape};
use crate::capability;
use crate::viewer::{EPHEMERAL_SESSION, STUDY_VIEW};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use lightbox_blob::{Claims, SignError};
use lightbox_domain::audit::ActorKind;
use lightbox_domain::ephemeral::EphemeralSessionId;
use lightbox_domain::study::Study;
use lightbox_domain::{OrgId, StudyId, Timestamp};
use lightbox_store::EphemeralSession;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/viewer/open/{token}", get(open_study))
        .route("/viewer/session/{token}", get(open_session))
}

fn invalid_link() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Invalid link",
        "<p>This link is not valid.</p>",
    )
}

/// Verifies a link for `purpose` and reads the organization it is for; the
/// audit trail then attributes the visit to the link's subject.
fn verify(
    state: &AppState,
    slot: Option<&AuditSlot>,
    token: &str,
    purpose: &str,
) -> Result<(OrgId, Claims), SignError> {
    let claims = state
        .signer
        .verify(token, purpose, Timestamp::now().millis())?;
    let org = OrgId::parse(&claims.org).map_err(|_| SignError::Invalid)?;
    if let Some(slot) = slot {
        slot.set(AuditActor {
            org_id: org,
            kind: ActorKind::SignedLink,
            id: Some(claims.subject.clone()),
        });
    }
    Ok((org, claims))
}

fn link_error(e: SignError) -> Response {
    match e {
        SignError::Expired => page(
            StatusCode::GONE,
            "Link expired",
            "<p>This link has expired. Ask for a new one.</p>",
        ),
        SignError::Invalid => invalid_link(),
    }
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "loading a signed-link page");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "<p>Something went wrong. Try again.</p>",
    )
}

#[utoipa::path(get, path = "/viewer/open/{token}", operation_id = "openStudyPage", tag = "viewer pages",
    params(("token" = String, Path, description = "The signed token of the link")),
    responses((status = 200, description = "The page for a study (from `reroute-url`): its details and images (the built-in viewer); sets the capability cookie that reads the study through /dicomweb until the link expires", content_type = "text/html", body = String),
        (status = 303, description = "To the OHIF viewer on the study, when it is installed (`--ohif-dir`); sets the same cookie"),
        (status = 403, description = "The link is not valid", content_type = "text/html", body = String),
        (status = 404, description = "What the link opens no longer exists", content_type = "text/html", body = String),
        (status = 410, description = "The link has expired", content_type = "text/html", body = String)))]
async fn open_study(
    State(state): State<AppState>,
    slot: Option<Extension<AuditSlot>>,
    Path(token): Path<String>,
) -> Response {
    let (org, claims) = match verify(&state, slot.as_deref(), &token, STUDY_VIEW) {
        Ok(verified) => verified,
        Err(e) => return link_error(e),
    };
    let Ok(id) = StudyId::parse(&claims.subject) else {
        return invalid_link();
    };
    // A study without images in the archive: its partner's, or "unavailable".
    if let Some(page) = crate::partner_access::on_study_link(&state, org, &id).await {
        return about(id.as_str(), page);
    }
    match state.store.study(org, &id).await {
        Ok(Some(study)) => {
            let uids = vec![study.study_instance_uid.clone()];
            let title = format!("Study {}", study.study_instance_uid);
            let details = study_details(&study);
            let response = open_images(&state, org, &claims, &title, &details, &uids).await;
            about(study.id.as_str(), response)
        }
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            "Study not found",
            "<p>This study no longer exists.</p>",
        ),
        Err(e) => server_error(e),
    }
}

#[utoipa::path(get, path = "/viewer/session/{token}", operation_id = "openSessionPage", tag = "viewer pages",
    params(("token" = String, Path, description = "The signed token of the link")),
    responses((status = 200, description = "The page for an ephemeral session (from `ephemeral-sessions`): its details and the images of the studies it names; sets the capability cookie for them", content_type = "text/html", body = String),
        (status = 303, description = "To the OHIF viewer on the session's studies, when it is installed and the session names any; sets the same cookie"),
        (status = 403, description = "The link is not valid", content_type = "text/html", body = String),
        (status = 404, description = "What the link opens no longer exists", content_type = "text/html", body = String),
        (status = 410, description = "The link has expired", content_type = "text/html", body = String)))]
async fn open_session(
    State(state): State<AppState>,
    slot: Option<Extension<AuditSlot>>,
    Path(token): Path<String>,
) -> Response {
    let (org, claims) = match verify(&state, slot.as_deref(), &token, EPHEMERAL_SESSION) {
        Ok(verified) => verified,
        Err(e) => return link_error(e),
    };
    let Ok(id) = EphemeralSessionId::parse(&claims.subject) else {
        return invalid_link();
    };
    // The session's images come from its partner (`ephemeral.access_requested`).
    let access = crate::partner_access::session_access(&state, org, &id).await;
    if let Some(page) = access.interrupts() {
        return about(id.as_str(), page);
    }
    match state.store.ephemeral_session(org, &id).await {
        Ok(Some(session)) => {
            let layout = session
                .hanging_protocol
                .as_ref()
                .map_or("default", |h| h.layout.as_str());
            let details = [
                ("Retrieval id", session.retrieval_id.clone()),
                ("Layout", layout.to_owned()),
                ("Valid until", session.expires_at.to_rfc3339()),
            ];
            let mut uids = match session_studies(&state, org, &session).await {
                Ok(uids) => uids,
                Err(e) => return server_error(e),
            };
            // The studies the partner's files just brought are the session's too.
            for uid in access.study_uids() {
                if !uids.contains(uid) && uids.len() < capability::MAX_STUDIES {
                    uids.push(uid.clone());
                }
            }
            open_images(&state, org, &claims, "Viewer session", &details, &uids).await
        }
        Ok(None) => invalid_link(),
        Err(e) => server_error(e),
    }
}

/// What a study link shows about its study (escaped when rendered).
fn study_details(s: &Study) -> Vec<(&'static str, String)> {
    let assignee = s
        .assigned_to
        .as_ref()
        .map(|u| format!("{} {} <{}>", u.first_name, u.last_name, u.email))
        .unwrap_or_else(|| "unassigned".into());
    vec![
        ("Description", s.description.clone()),
        ("Study Instance UID", s.study_instance_uid.clone()),
        ("Severity", s.severity.as_str().to_owned()),
        ("Status", s.viewer_status.as_str().to_owned()),
        (
            "Cancelled",
            if s.is_cancelled { "yes" } else { "no" }.to_owned(),
        ),
        ("Assigned to", assignee),
        ("Created", s.created_at.to_rfc3339()),
    ]
}

/// The studies an ephemeral session grants. A session names no Lightbox
/// study (its retrieval id is the caller's handle), so it grants the
/// StudyInstanceUIDs it carries: its retrieval id when that is one, and
/// those listed in its options as `studyInstanceUids` (or
/// `StudyInstanceUIDs`), each only if the organization's archive holds it;
/// at most [`capability::MAX_STUDIES`].
async fn session_studies(
    state: &AppState,
    org: OrgId,
    session: &EphemeralSession,
) -> Result<Vec<String>, lightbox_store::StoreError> {
    let mut named = vec![session.retrieval_id.as_str()];
    if let Some(options) = session.options.as_ref().and_then(|o| o.as_object()) {
        for key in ["studyInstanceUids", "StudyInstanceUIDs"] {
            match options.get(key) {
                Some(serde_json::Value::String(uid)) => named.push(uid),
                Some(serde_json::Value::Array(uids)) => {
                    named.extend(uids.iter().filter_map(|u| u.as_str()))
                }
                _ => {}
            }
        }
    }
    let mut uids: Vec<String> = Vec::new();
    for uid in named {
        let uid = uid.trim();
        if lightbox_domain::validate::dicom_uid("StudyInstanceUID", uid).is_ok()
            && !uids.iter().any(|u| u == uid)
            && uids.len() < capability::MAX_STUDIES
        {
            uids.push(uid.to_owned());
        }
    }
    let held = state.store.viewer_studies(org, &uids).await?;
    Ok(held.into_iter().map(|s| s.study_instance_uid).collect())
}

/// The answer to a valid link: the capability cookie for `uids` until the
/// link expires, with OHIF (when installed and there is something to show)
/// or the built-in page of the link's details and images.
async fn open_images(
    state: &AppState,
    org: OrgId,
    claims: &Claims,
    title: &str,
    details: &[(&'static str, String)],
    uids: &[String],
) -> Response {
    let mut response = match builtin_viewer::ohif_redirect(state, uids) {
        Some(redirect) => redirect,
        None => match builtin_viewer::page(state, org, title, details, uids).await {
            Ok(page) => page,
            Err(e) => return server_error(e),
        },
    };
    let cookie = capability::grant(
        state,
        org,
        &claims.subject,
        uids,
        Timestamp::from_millis(claims.expires_at_ms),
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Lightbox</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}}dt{{font-weight:600}}dd{{margin:0 0 .6rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    builtin_viewer::with_page_headers(
        (status, Html(html)).into_response(),
        "default-src 'none'; style-src 'unsafe-inline'",
    )
}
