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
use utoipa::ToSchema;

const USERS: &str = "users";
const INVITATIONS: &str = "invitations";

#[utoipa::path(get, path = "/v1/viewer/users/{user_id}", operation_id = "getUser", tag = "users", security(("apiKey" = [])),
    params(("user_id" = String, Path, pattern = "^usr_[0-9a-fA-F]{32}$", description = "The user's id (`usr_…`)")),
    responses((status = 200, description = "The user", body = super::wire::UserJson)))]
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
/// Only the keys sent change.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UpdateUserRequest, example = json!({"clinicRole": "Radiologist", "canManageStudies": true}))]
pub struct UserPatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool)]
    can_manage_studies: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::openapi::clinic_role)]
    clinic_role: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String)]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String)]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool)]
    has_dashboard_access: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = UserLevel)]
    level: Option<Option<UserLevel>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    middle_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{10,15}$")]
    phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    suffix1: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    suffix2: Option<Option<String>>,
    /// Present only to refuse it: an e-mail address cannot be changed.
    #[serde(default)]
    #[schema(ignore)]
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

#[utoipa::path(patch, path = "/v1/viewer/users/{user_id}", operation_id = "updateUser", tag = "users", security(("apiKey" = [])),
    params(("user_id" = String, Path, pattern = "^usr_[0-9a-fA-F]{32}$", description = "The user's id (`usr_…`)")),
    request_body = UserPatchBody,
    responses((status = 200, description = "The updated user", body = super::wire::UserJson)))]
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

#[utoipa::path(get, path = "/v1/viewer/users", operation_id = "listUsers", tag = "users", security(("apiKey" = [])),
    params(
        ("email" = Option<String>, Query), ("firstName" = Option<String>, Query),
        ("lastName" = Option<String>, Query), ("level" = Option<UserLevel>, Query),
        ("invitedSource" = Option<InvitedSource>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 25)"),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page")),
    responses((status = 200, description = "One page of users", body = crate::openapi::UserPage)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InviteUserRequest, example = json!({
    "email": "ada@example.org", "firstName": "Ada", "lastName": "Lovelace",
    "clinicRole": "Radiologist", "level": "member",
    "canManageStudies": true, "hasDashboardAccess": false
}))]
pub struct InviteBody {
    can_manage_studies: bool,
    #[schema(schema_with = crate::openapi::clinic_role)]
    clinic_role: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    first_name: String,
    last_name: String,
    has_dashboard_access: bool,
    level: UserLevel,
    middle_name: Option<String>,
    #[schema(pattern = "^[0-9]{10,15}$")]
    phone_number: Option<String>,
    suffix1: Option<String>,
    suffix2: Option<String>,
}

/// Creates the user and an invitation for them; answers with the user.
#[utoipa::path(post, path = "/v1/viewer/users", operation_id = "inviteUser", tag = "users", security(("apiKey" = [])),
    request_body = InviteBody,
    responses((status = 201, description = "The invited user (an invitation is sent)", body = super::wire::UserJson),
        (status = 409, description = "A user with this e-mail address exists", body = crate::openapi::ViewerError)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserIdRequest, example = json!({"userId": "usr_01966b0e7f3a7c4e9a513f2b8d6c1e23"}))]
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

#[utoipa::path(post, path = "/v1/viewer/users/reactivate", operation_id = "reactivateUser", tag = "users", security(("apiKey" = [])),
    request_body = UserIdBody,
    responses((status = 200, description = "Reactivated", body = super::wire::SuccessResponse),
        (status = 404, description = "No such user", body = crate::openapi::ViewerError)))]
pub async fn reactivate(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UserIdBody>,
) -> ViewerResult<Response> {
    set_active(&state, &caller, &body, true).await
}

#[utoipa::path(post, path = "/v1/viewer/users/revoke-access", operation_id = "revokeUserAccess", tag = "users", security(("apiKey" = [])),
    request_body = UserIdBody,
    responses((status = 200, description = "Access revoked", body = super::wire::SuccessResponse),
        (status = 404, description = "No such user", body = crate::openapi::ViewerError)))]
pub async fn revoke_access(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UserIdBody>,
) -> ViewerResult<Response> {
    set_active(&state, &caller, &body, false).await
}

#[utoipa::path(get, path = "/v1/viewer/users/invitations/{invitation_id}", operation_id = "getInvitation", tag = "invitations", security(("apiKey" = [])),
    params(("invitation_id" = String, Path, pattern = "^inv_[0-9a-fA-F]{32}$", description = "The invitation's id (`inv_…`)")),
    responses((status = 200, description = "The invitation", body = super::wire::InvitationJson)))]
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

#[utoipa::path(patch, path = "/v1/viewer/users/invitations/{invitation_id}", operation_id = "updateInvitation", tag = "invitations", security(("apiKey" = [])),
    params(("invitation_id" = String, Path, pattern = "^inv_[0-9a-fA-F]{32}$", description = "The invitation's id (`inv_…`)")),
    request_body = UserPatchBody,
    responses((status = 200, description = "The invitation, with its user updated", body = super::wire::InvitationJson)))]
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

#[utoipa::path(get, path = "/v1/viewer/users/invitations", operation_id = "listInvitations", tag = "invitations", security(("apiKey" = [])),
    params(
        ("status" = Option<String>, Query, description = "Comma-separated statuses: sent, accepted, rejected, revoked"),
        ("expired" = Option<InvitationExpiredFilter>, Query),
        ("startDate" = Option<String>, Query, format = Date, description = "Created on or after (YYYY-MM-DD)"),
        ("endDate" = Option<String>, Query, format = Date, description = "Created on or before (YYYY-MM-DD)"),
        ("userId" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 25)"),
        ("cursor" = Option<String>, Query, description = "The `cursor` of the previous page")),
    responses((status = 200, description = "One page of invitations", body = crate::openapi::InvitationPage)))]
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

/// Names the invitation by its id or by its user's id.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RevokeInvitationRequest, example = json!({"invitationId": "inv_01966b0e7f3a7c4e9a513f2b8d6c1e24"}))]
pub struct RevokeInvitationBody {
    invitation_id: Option<String>,
    user_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/viewer/users/invitations/revoke", operation_id = "revokeInvitation", tag = "invitations", security(("apiKey" = [])),
    request_body = RevokeInvitationBody,
    responses((status = 200, description = "Revoked", body = super::wire::SuccessResponse),
        (status = 404, description = "No such invitation", body = crate::openapi::ViewerError)))]
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
