//! The organization's people, for its admins (level admin or owner): users
//! with their access, pending invitations with their links (Lightbox sends no
//! e-mail, so the admin passes the link on), invite, revoke an invitation,
//! deactivate and reactivate a user; and its API keys and OAuth clients
//! (create: the secret is shown once; revoke). The same store calls, rules and
//! audit actions as the Viewer API's user endpoints and `lightbox admin`.

use super::{display_name, error_page, render, AssetUrlsRef, HtmlForm, Nav};
use crate::login::WebUser;
use crate::{audit, links, WebState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_domain::invitation::{
    InvitationExpiredFilter, InvitationFilter, InvitationId, InvitationStatus,
};
use lightbox_domain::user::{InvitedSource, NewUser, UserFilter, UserLevel};
use lightbox_domain::{ApiKeyId, OAuthClientId};
use lightbox_domain::{Error, Timestamp, UserId};
use lightbox_store::{Credential, CredentialKind, Inviter};
use serde::Deserialize;

/// Users and invitations listed (a clinic's staff, not a directory).
const LISTED: u32 = 200;

pub struct UserRow {
    id: String,
    name: String,
    email: String,
    level: &'static str,
    dashboard: bool,
    active: bool,
    last_sign_in: String,
    is_owner: bool,
}

pub struct CredentialRow {
    kind: &'static str,
    /// `api-key` or `oauth-client`, for the revoke URL.
    slug: &'static str,
    id: String,
    description: String,
    created: String,
    revoked: Option<String>,
}

pub struct InvitationRow {
    id: String,
    name: String,
    email: String,
    expires: String,
    link: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    assets: AssetUrlsRef,
    nav: Nav,
    users: Vec<UserRow>,
    invitations: Vec<InvitationRow>,
    notice: Option<String>,
    error: Option<String>,
    new_link: Option<String>,
    roles: &'static [&'static str],
    credentials: Vec<CredentialRow>,
    /// A credential just created: (label, id, secret), shown this once.
    new_secret: Option<(String, String, String)>,
}

fn is_admin(user: &WebUser) -> bool {
    user.user.level != UserLevel::Member
}

fn forbidden() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Admins only",
        "Only the organization's admins may manage its people.",
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin page");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Try again in a moment.",
    )
}

async fn page(
    state: &WebState,
    user: &WebUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    new_link: Option<String>,
) -> Response {
    page_with_secret(state, user, status, notice, error, new_link, None).await
}

async fn page_with_secret(
    state: &WebState,
    user: &WebUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    new_link: Option<String>,
    new_secret: Option<(String, String, String)>,
) -> Response {
    let credentials = match state.store.list_credentials(user.org_id).await {
        Ok(all) => all,
        Err(e) => return internal(e),
    };
    let users = match state
        .store
        .list_users(user.org_id, &UserFilter::default(), LISTED, None)
        .await
    {
        Ok(page) => page.items,
        Err(e) => return internal(e),
    };
    let filter = InvitationFilter {
        statuses: vec![InvitationStatus::Sent],
        expired: Some(InvitationExpiredFilter::NotExpired),
        ..InvitationFilter::default()
    };
    let invitations = match state
        .store
        .list_invitations(user.org_id, &filter, LISTED, None, Timestamp::now())
        .await
    {
        Ok(page) => page.items,
        Err(e) => return internal(e),
    };
    render(
        status,
        &AdminPage {
            assets: crate::assets::urls(),
            nav: Nav::of(user),
            users: users
                .iter()
                .map(|u| UserRow {
                    id: u.reference.id.to_string(),
                    name: display_name(u),
                    email: u.reference.email.clone(),
                    level: u.level.as_str(),
                    dashboard: u.has_dashboard_access,
                    active: u.is_active,
                    last_sign_in: u
                        .last_login_at
                        .map(super::worklist::when)
                        .unwrap_or_else(|| "never".into()),
                    is_owner: u.level == UserLevel::Owner,
                })
                .collect(),
            invitations: invitations
                .iter()
                .map(|i| InvitationRow {
                    id: i.id.to_string(),
                    name: display_name(&i.user),
                    email: i.user.reference.email.clone(),
                    expires: i
                        .expiry
                        .map(super::worklist::when)
                        .unwrap_or_else(|| "never".into()),
                    link: links::invitation_path(&state.signer, i),
                })
                .collect(),
            notice,
            error,
            new_link,
            roles: lightbox_domain::user::CLINIC_ROLES,
            credentials: credentials
                .into_iter()
                .map(|c| {
                    let (kind, slug) = match c.kind {
                        CredentialKind::ApiKey => ("API key (Viewer)", "api-key"),
                        CredentialKind::OAuthClient => ("OAuth client (Images)", "oauth-client"),
                    };
                    CredentialRow {
                        kind,
                        slug,
                        id: c.id,
                        description: c.description,
                        created: super::worklist::when(c.created_at),
                        revoked: c.revoked_at.map(super::worklist::when),
                    }
                })
                .collect(),
            new_secret,
        },
    )
}

pub async fn show(State(state): State<WebState>, user: WebUser) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    page(&state, &user, StatusCode::OK, None, None, None).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    email: String,
    first_name: String,
    last_name: String,
    clinic_role: String,
    level: String,
    #[serde(default)]
    can_manage_studies: Option<String>,
    #[serde(default)]
    has_dashboard_access: Option<String>,
}

pub async fn invite(
    State(state): State<WebState>,
    user: WebUser,
    HtmlForm(form): HtmlForm<InviteForm>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    let level = match UserLevel::parse(&form.level) {
        Ok(level) => level,
        Err(e) => {
            return page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.to_string()),
                None,
            )
            .await
        }
    };
    let new = NewUser {
        email: form.email.trim().to_owned(),
        first_name: form.first_name.trim().to_owned(),
        last_name: form.last_name.trim().to_owned(),
        middle_name: None,
        suffix1: None,
        suffix2: None,
        phone_number: None,
        clinic_role: form.clinic_role.trim().to_owned(),
        level,
        can_manage_studies: form.can_manage_studies.is_some(),
        has_dashboard_access: form.has_dashboard_access.is_some(),
        invited_source: InvitedSource::Dashboard,
    };
    let me = user.user.reference.id.clone();
    match state
        .store
        .invite_user(user.org_id, &Inviter::User(me.clone()), &new)
        .await
    {
        Ok((invited, invitation)) => {
            audit::record(
                &state,
                &user.origin,
                user.org_id,
                &me,
                "user.invite",
                Some(invited.reference.id.as_str()),
                201,
            )
            .await;
            let link = links::invitation_path(&state.signer, &invitation);
            let notice = format!(
                "{} is invited. Give them this link; it sets their password and works once.",
                display_name(&invited)
            );
            page(
                &state,
                &user,
                StatusCode::CREATED,
                Some(notice),
                None,
                Some(link),
            )
            .await
        }
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_) | Error::Unprocessable(_))) => {
            page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.to_string()),
                None,
            )
            .await
        }
        Err(e) => internal(e),
    }
}

async fn after_change(
    state: &WebState,
    user: &WebUser,
    action: &str,
    resource: &str,
    result: Result<String, Error>,
) -> Response {
    let me = &user.user.reference.id;
    match result {
        Ok(_) => {
            audit::record(
                state,
                &user.origin,
                user.org_id,
                me,
                action,
                Some(resource),
                303,
            )
            .await;
            Redirect::to("/ui/admin").into_response()
        }
        Err(Error::NotFound(_)) => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such user or invitation.",
        ),
        Err(e @ (Error::Conflict(_) | Error::Unprocessable(_) | Error::Invalid { .. })) => {
            audit::record(
                state,
                &user.origin,
                user.org_id,
                me,
                action,
                Some(resource),
                409,
            )
            .await;
            page(
                state,
                user,
                StatusCode::CONFLICT,
                None,
                Some(e.to_string()),
                None,
            )
            .await
        }
        Err(e) => internal(e),
    }
}

async fn set_active(state: WebState, user: WebUser, user_id: String, active: bool) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    let Ok(id) = UserId::parse(&user_id) else {
        return error_page(StatusCode::NOT_FOUND, "Not found", "There is no such user.");
    };
    if id == user.user.reference.id && !active {
        return page(
            &state,
            &user,
            StatusCode::CONFLICT,
            None,
            Some("You cannot deactivate yourself.".into()),
            None,
        )
        .await;
    }
    let result = state
        .store
        .set_user_active(user.org_id, &id, active)
        .await
        .map(|u| u.reference.id.to_string());
    let action = if active {
        "user.reactivate"
    } else {
        "user.revoke_access"
    };
    after_change(&state, &user, action, &user_id, result).await
}

pub async fn deactivate(
    State(state): State<WebState>,
    user: WebUser,
    Path(user_id): Path<String>,
) -> Response {
    set_active(state, user, user_id, false).await
}

pub async fn reactivate(
    State(state): State<WebState>,
    user: WebUser,
    Path(user_id): Path<String>,
) -> Response {
    set_active(state, user, user_id, true).await
}

pub async fn revoke_invitation(
    State(state): State<WebState>,
    user: WebUser,
    Path(invitation_id): Path<String>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    let Ok(id) = InvitationId::parse(&invitation_id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such invitation.",
        );
    };
    let result = state
        .store
        .revoke_invitation(user.org_id, Some(&id), None)
        .await
        .map(|i| i.id.to_string());
    after_change(&state, &user, "invitation.revoke", &invitation_id, result).await
}

#[derive(Deserialize)]
pub struct CredentialForm {
    kind: String,
    description: String,
}

/// Issues an API key or an OAuth client; its secret is on this response only.
pub async fn create_credential(
    State(state): State<WebState>,
    user: WebUser,
    HtmlForm(form): HtmlForm<CredentialForm>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    let description = form.description.trim();
    if let Err(e) = lightbox_domain::validate::required_text("description", description, 200) {
        return page(
            &state,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(e.to_string()),
            None,
        )
        .await;
    }
    let me = user.user.reference.id.clone();
    let created = match form.kind.as_str() {
        "api-key" => state
            .store
            .create_api_key(user.org_id, description, Some(&me))
            .await
            .map(|(id, token)| ("api_key.create", "API key", id.to_string(), token)),
        "oauth-client" => state
            .store
            .create_oauth_client(user.org_id, description)
            .await
            .map(|(id, secret)| {
                (
                    "oauth_client.create",
                    "OAuth client secret",
                    id.as_str().to_owned(),
                    secret,
                )
            }),
        _ => {
            return page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("choose an API key or an OAuth client".into()),
                None,
            )
            .await
        }
    };
    let (action, label, id, secret) = match created {
        Ok(created) => created,
        Err(e) => return internal(e),
    };
    if !audit::record(
        &state,
        &user.origin,
        user.org_id,
        &me,
        action,
        Some(&id),
        201,
    )
    .await
    {
        let _ = match action {
            "api_key.create" => match ApiKeyId::parse(&id) {
                Ok(key) => {
                    state
                        .store
                        .revoke_credential(user.org_id, Credential::ApiKey(key))
                        .await
                }
                Err(_) => Ok(false),
            },
            _ => {
                state
                    .store
                    .revoke_credential(
                        user.org_id,
                        Credential::OAuthClient(&OAuthClientId::from_trusted(id.clone())),
                    )
                    .await
            }
        };
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The audit trail cannot be written right now, so nothing was issued.",
        );
    }
    let notice = format!("Copy the {label} now: it is shown this once and stored only as a hash.");
    page_with_secret(
        &state,
        &user,
        StatusCode::CREATED,
        Some(notice),
        None,
        None,
        Some((label.to_owned(), id, secret)),
    )
    .await
}

pub async fn revoke_credential(
    State(state): State<WebState>,
    user: WebUser,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such credential.",
        )
    };
    let (result, action) = match kind.as_str() {
        "api-key" => match ApiKeyId::parse(&id) {
            Ok(key) => (
                state
                    .store
                    .revoke_credential(user.org_id, Credential::ApiKey(key))
                    .await,
                "api_key.revoke",
            ),
            Err(_) => return not_found(),
        },
        "oauth-client" => match OAuthClientId::parse(&id) {
            Ok(client) => (
                state
                    .store
                    .revoke_credential(user.org_id, Credential::OAuthClient(&client))
                    .await,
                "oauth_client.revoke",
            ),
            Err(_) => return not_found(),
        },
        _ => return not_found(),
    };
    match result {
        // Another organization's id, an unknown one, or already revoked.
        Ok(false) => not_found(),
        Ok(true) => {
            audit::record(
                &state,
                &user.origin,
                user.org_id,
                &user.user.reference.id,
                action,
                Some(&id),
                303,
            )
            .await;
            Redirect::to("/ui/admin").into_response()
        }
        Err(e) => internal(e),
    }
}
