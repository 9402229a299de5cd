//! The organization's people, for its admins (level admin or owner): users
//! with their access, pending invitations with their links (Lightbox sends no
//! e-mail, so the admin passes the link on), invite, revoke an invitation,
//! deactivate and reactivate a user. The same store calls, rules and audit
//! actions as the Viewer API's user endpoints.

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
use lightbox_domain::{Error, Timestamp, UserId};
use lightbox_store::Inviter;
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
