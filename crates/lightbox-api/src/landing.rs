//! The pages signed Viewer links open: a study (reroute links) or an ephemeral
//! session, shown without other credentials while the link's signature and
//! expiry hold.

use crate::audit::{about, AuditActor, AuditSlot};
use crate::viewer::{EPHEMERAL_SESSION, STUDY_VIEW};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use lightbox_blob::{Claims, SignError};
use lightbox_domain::audit::ActorKind;
use lightbox_domain::ephemeral::EphemeralSessionId;
use lightbox_domain::study::Study;
use lightbox_domain::{OrgId, StudyId, Timestamp};

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
    responses((status = 200, description = "The page for a study (from `reroute-url`)", content_type = "text/html", body = String),
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
        Ok(Some(study)) => about(
            study.id.as_str(),
            page(
                StatusCode::OK,
                &format!("Study {}", study.study_instance_uid),
                &study_html(&study),
            ),
        ),
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
    responses((status = 200, description = "The page for an ephemeral session (from `ephemeral-sessions`)", content_type = "text/html", body = String),
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
    if let Some(page) = crate::partner_access::on_session_link(&state, org, &id).await {
        return about(id.as_str(), page);
    }
    match state.store.ephemeral_session(org, &id).await {
        Ok(Some(session)) => {
            let layout = session
                .hanging_protocol
                .as_ref()
                .map_or("default", |h| h.layout.as_str());
            let body = format!(
                "<dl><dt>Retrieval id</dt><dd>{}</dd><dt>Layout</dt><dd>{layout}</dd>\
                 <dt>Valid until</dt><dd>{}</dd></dl>",
                escape(&session.retrieval_id),
                session.expires_at.to_rfc3339()
            );
            page(StatusCode::OK, "Viewer session", &body)
        }
        Ok(None) => invalid_link(),
        Err(e) => server_error(e),
    }
}

fn study_html(s: &Study) -> String {
    let assignee = s
        .assigned_to
        .as_ref()
        .map(|u| {
            format!(
                "{} {} &lt;{}&gt;",
                escape(&u.first_name),
                escape(&u.last_name),
                escape(&u.email)
            )
        })
        .unwrap_or_else(|| "unassigned".into());
    let rows = [
        ("Description", escape(&s.description)),
        ("Study Instance UID", escape(&s.study_instance_uid)),
        ("Severity", s.severity.as_str().to_owned()),
        ("Status", s.viewer_status.as_str().to_owned()),
        (
            "Cancelled",
            if s.is_cancelled {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        ("Assigned to", assignee),
        ("Created", s.created_at.to_rfc3339()),
    ];
    let mut html = String::from("<dl>");
    for (label, value) in rows {
        html.push_str(&format!("<dt>{label}</dt><dd>{value}</dd>"));
    }
    html.push_str("</dl>");
    html
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Lightbox</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}}dt{{font-weight:600}}dd{{margin:0 0 .6rem}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // The token is in the URL: keep it out of caches and Referer headers.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
