//! Who is calling DICOMweb, from the request's credentials. One credential
//! decides, in this order (the first present one; a bad one is 401, never a
//! fall-through to the next):
//!
//! 1. `Authorization: Bearer <Viewer API key>`: the organization's whole
//!    archive, and the only caller that may store (STOW-RS).
//! 2. The capability cookie a study or session link set
//!    ([`crate::capability`]): that link's studies, until the link expires.
//!    Checked before the web session on purpose: a browser that opened a link
//!    sees exactly what the link grants, whoever is signed in.
//! 3. The web app's sign-in cookie: the signed-in person's organization's
//!    whole archive (the web app's pages show images and open the viewer).
//!
//! Nothing else is a caller: 401.

use super::{DicomAccess, DicomwebCaller};
use crate::auth;
use crate::capability;
use crate::error::ApiError;
use crate::AppState;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lightbox_domain::audit::ActorKind;
use lightbox_domain::credentials::hash_secret;
use lightbox_domain::Timestamp;

pub(super) async fn resolve(parts: &Parts, state: &AppState) -> Result<DicomwebCaller, ApiError> {
    if parts.headers.contains_key(AUTHORIZATION) {
        let key = auth::api_key(parts, state).await?;
        return Ok(DicomwebCaller {
            org_id: key.org_id,
            api_key_id: Some(key.id),
            access: DicomAccess::Archive,
        });
    }
    if let Some(token) = capability::cookie(&parts.headers, capability::cookie_name(&state.config))
    {
        let granted = capability::verify(state, token).map_err(|e| {
            ApiError::unauthorized(format!(
                "the viewer link's access is not valid: {e}; open the link again"
            ))
        })?;
        auth::identified(
            parts,
            state,
            granted.org_id,
            ActorKind::SignedLink,
            granted.link,
        )?;
        return Ok(DicomwebCaller {
            org_id: granted.org_id,
            api_key_id: None,
            access: DicomAccess::Studies(granted.studies),
        });
    }
    if let Some(token) = capability::cookie(
        &parts.headers,
        capability::web_session_cookie_name(state.config.public_url.as_deref()),
    ) {
        return signed_in(parts, state, token).await;
    }
    Err(ApiError::unauthorized(
        "send a Viewer API key as `Authorization: Bearer <api key>`, open a study link, or sign in to the web app",
    ))
}

/// A web-app session, held to the web app's own rules: within its absolute
/// limit, used within the idle timeout, its user still active with dashboard
/// access. Viewing images counts as use, at most one write a minute.
async fn signed_in(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<DicomwebCaller, ApiError> {
    let ended = || ApiError::unauthorized("the web session has ended; sign in again");
    let token_hash = hash_secret(token);
    let session = state
        .store
        .web_session(&token_hash)
        .await?
        .ok_or_else(ended)?;
    let now = Timestamp::now();
    let idle = i64::try_from(state.config.web_idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let unused_for = now.millis() - session.last_seen_at.millis();
    if now >= session.expires_at || unused_for >= idle {
        return Err(ended());
    }
    let user = state
        .store
        .user(session.org_id, &session.user_id)
        .await?
        .filter(|u| u.is_active && u.has_dashboard_access)
        .ok_or_else(ended)?;
    if unused_for >= (idle / 4).min(60_000) {
        state.store.touch_web_session(&token_hash, now).await?;
    }
    auth::identified(
        parts,
        state,
        session.org_id,
        ActorKind::User,
        user.reference.id.to_string(),
    )?;
    Ok(DicomwebCaller {
        org_id: session.org_id,
        api_key_id: None,
        access: DicomAccess::Archive,
    })
}
