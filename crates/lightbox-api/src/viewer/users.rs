//! `/v1/viewer/users` and `/v1/viewer/users/invitations` handlers.

use super::wire::{page_json, InvitationJson, SuccessResponse, UserJson};
use super::{Caller, ViewerResult};
use crate::audit::about;
use crate::extract::{not_null, nullable, JsonBody, PathParam, QueryMap};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lightbox_domain::invitation::{
    parse_date, InvitationExpiredFilter, InvitationFilter, InvitationId, InvitationStatus,
};
use lightbox_domain::pagination::{decode_cursor, encode_cursor, parse_limit};
use lightbox_domain::user::{InvitedSource, NewUser, UserFilter, UserLevel, UserPatch};
use lightbox_domain::{validate, Error, Timestamp, UserId};
use lightbox_store::Inviter;
use serde::Deserialize;

const USERS: &str = "users";
const INVITATIONS: &str = "invitations";

pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(user_id): PathParam<String>,
) -> ViewerResult<Response> {
    let id = UserId::parse(&user_id)?;
    let user = state
        .store
        .user(caller.org_id, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {id} not found")))?;
    Ok(Json(UserJson::from(&user)).into_response())
}

/// The editable fields of a user; also the body of an invitation update.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPatchBody {
    #[serde(default, deserialize_with = "nullable")]
    can_manage_studies: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    clinic_role: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    has_dashboard_access: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    level: Option<Option<UserLevel>>,
    #[serde(default, deserialize_with = "nullable")]
    middle_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    suffix1: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    suffix2: Option<Option<String>>,
    /// Present only to refuse it: an e-mail address cannot be changed.
    #[serde(default)]
    email: Option<serde_json::Value>,
}

impl UserPatchBody {
    fn into_patch(self) -> Result<UserPatch, Error> {
        if self.email.is_some() {
            return Err(Error::invalid(
                "email",
                "a user's e-mail address cannot be changed",
            ));
        }
        Ok(UserPatch {
            first_name: not_null("firstName", self.first_name)?,
            last_name: not_null("lastName", self.last_name)?,
            middle_name: self.middle_name,
            suffix1: self.suffix1,
            suffix2: self.suffix2,
            phone_number: self.phone_number,
            // The SDK allows null, but every user has a clinic role.
            clinic_role: not_null("clinicRole", self.clinic_role)?,
            level: not_null("level", self.level)?,
            can_manage_studies: not_null("canManageStudies", self.can_manage_studies)?,
            has_dashboard_access: not_null("hasDashboardAccess", self.has_dashboard_access)?,
        })
    }
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(user_id): PathParam<String>,
    JsonBody(body): JsonBody<UserPatchBody>,
) -> ViewerResult<Response> {
    let id = UserId::parse(&user_id)?;
    let user = state
        .store
        .update_user(caller.org_id, &id, &body.into_patch()?)
        .await?;
    Ok(Json(UserJson::from(&user)).into_response())
}

fn user_filter(query: &QueryMap) -> Result<UserFilter, Error> {
    let text = |key: &str| -> Result<Option<String>, Error> {
        query
            .non_empty(key)
            .map(|v| validate::bounded_text(key, v, 254).map(|_| v.to_owned()))
            .transpose()
    };
    Ok(UserFilter {
        email: text("email")?,
        first_name: text("firstName")?,
        last_name: text("lastName")?,
        level: query.non_empty("level").map(UserLevel::parse).transpose()?,
        invited_source: query
            .non_empty("invitedSource")
            .map(InvitedSource::parse)
            .transpose()?,
    })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> ViewerResult<Response> {
    let filter = user_filter(&query)?;
    let limit = parse_limit(query.non_empty("limit"))?;
    let after = query
        .non_empty("cursor")
        .map(|c| decode_cursor(USERS, c, UserId::parse))
        .transpose()?;
    let page = state
        .store
        .list_users(caller.org_id, &filter, limit, after.as_ref())
        .await?;
    let cursor = page.next_after.map(|id| encode_cursor(USERS, id.as_str()));
    let users = page.items.iter().map(UserJson::from).collect();
    Ok(Json(page_json(USERS, users, cursor)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteBody {
    can_manage_studies: bool,
    clinic_role: String,
    email: String,
    first_name: String,
    last_name: String,
    has_dashboard_access: bool,
    level: UserLevel,
    middle_name: Option<String>,
    phone_number: Option<String>,
    suffix1: Option<String>,
    suffix2: Option<String>,
}

/// Creates the user and an invitation for them; answers with the user.
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<InviteBody>,
) -> ViewerResult<Response> {
    let new = NewUser {
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        middle_name: body.middle_name,
        suffix1: body.suffix1,
        suffix2: body.suffix2,
        phone_number: body.phone_number,
        clinic_role: body.clinic_role,
        level: body.level,
        can_manage_studies: body.can_manage_studies,
        has_dashboard_access: body.has_dashboard_access,
        invited_source: InvitedSource::Api,
    };
    let (user, _) = state
        .store
        .invite_user(caller.org_id, &Inviter::ApiKey(caller.key.id), &new)
        .await?;
    Ok(about(
        user.reference.id.as_str(),
        (StatusCode::CREATED, Json(UserJson::from(&user))).into_response(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdBody {
    user_id: String,
}

async fn set_active(
    state: &AppState,
    caller: &Caller,
    body: &UserIdBody,
    active: bool,
) -> ViewerResult<Response> {
    let id = UserId::parse(&body.user_id)?;
    state
        .store
        .set_user_active(caller.org_id, &id, active)
        .await?;
    let done = if active {
        "reactivated"
    } else {
        "had their access revoked"
    };
    Ok(about(
        id.as_str(),
        Json(SuccessResponse {
            success: true,
            message: Some(format!("user {id} {done}")),
        })
        .into_response(),
    ))
}

pub async fn reactivate(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UserIdBody>,
) -> ViewerResult<Response> {
    set_active(&state, &caller, &body, true).await
}

pub async fn revoke_access(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UserIdBody>,
) -> ViewerResult<Response> {
    set_active(&state, &caller, &body, false).await
}

pub async fn retrieve_invitation(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(invitation_id): PathParam<String>,
) -> ViewerResult<Response> {
    let id = InvitationId::parse(&invitation_id)?;
    let invitation = state
        .store
        .invitation(caller.org_id, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("invitation {id} not found")))?;
    Ok(Json(InvitationJson::from(&invitation)).into_response())
}

pub async fn update_invitation(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(invitation_id): PathParam<String>,
    JsonBody(body): JsonBody<UserPatchBody>,
) -> ViewerResult<Response> {
    let id = InvitationId::parse(&invitation_id)?;
    let invitation = state
        .store
        .update_invitation(caller.org_id, &id, &body.into_patch()?)
        .await?;
    Ok(Json(InvitationJson::from(&invitation)).into_response())
}

fn invitation_filter(query: &QueryMap) -> Result<InvitationFilter, Error> {
    // `status=sent,revoked`; the SDK sends an empty list as `status=`, meaning no filter.
    let statuses = query
        .get("status")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(InvitationStatus::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let end_date = query
        .non_empty("endDate")
        .map(|d| parse_date("endDate", d))
        .transpose()?;
    Ok(InvitationFilter {
        statuses,
        expired: query
            .non_empty("expired")
            .map(InvitationExpiredFilter::parse)
            .transpose()?,
        created_from: query
            .non_empty("startDate")
            .map(|d| parse_date("startDate", d))
            .transpose()?,
        // endDate is inclusive: created before the start of the next day.
        created_before: end_date.map(|d| d.plus_seconds(86_400)),
        user_id: query
            .non_empty("userId")
            .map(|u| UserId::parse_for("userId", u))
            .transpose()?,
    })
}

pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> ViewerResult<Response> {
    let filter = invitation_filter(&query)?;
    let limit = parse_limit(query.non_empty("limit"))?;
    let after = query
        .non_empty("cursor")
        .map(|c| decode_cursor(INVITATIONS, c, InvitationId::parse))
        .transpose()?;
    let page = state
        .store
        .list_invitations(
            caller.org_id,
            &filter,
            limit,
            after.as_ref(),
            Timestamp::now(),
        )
        .await?;
    let cursor = page
        .next_after
        .map(|id| encode_cursor(INVITATIONS, id.as_str()));
    let invitations = page.items.iter().map(InvitationJson::from).collect();
    Ok(Json(page_json(INVITATIONS, invitations, cursor)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeInvitationBody {
    invitation_id: Option<String>,
    user_id: Option<String>,
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RevokeInvitationBody>,
) -> ViewerResult<Response> {
    let id = body
        .invitation_id
        .as_deref()
        .map(InvitationId::parse)
        .transpose()?;
    let user = body.user_id.as_deref().map(UserId::parse).transpose()?;
    let invitation = state
        .store
        .revoke_invitation(caller.org_id, id.as_ref(), user.as_ref())
        .await?;
    Ok(about(
        invitation.id.as_str(),
        Json(SuccessResponse {
            success: true,
            message: Some(format!("invitation {} revoked", invitation.id)),
        })
        .into_response(),
    ))
}
