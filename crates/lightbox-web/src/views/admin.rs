//! The organization's people, for its admins (level admin or owner): users
//! with their access, pending invitations with their links (Lightbox sends no
//! e-mail, so the admin passes the link on), invite, revoke an invitation,
//! deactivate and reactivate a user; and its API keys and OAuth clients
//! (create: the secret is shown once; revoke); its DICOM receiver settings
//! (called AE title, allowed senders: the rules of `lightbox admin
//! set-ae-title/allow-dicom-peer/remove-dicom-peer`); and its webhook
//! endpoints with their recent deliveries (never a signing secret). The same
//! store calls, rules and audit actions as the Viewer API's user endpoints
//! and `lightbox admin`.

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
    dicom: DicomSettings,
    webhooks: Vec<WebhookRow>,
    deliveries: Vec<DeliveryRow>,
}

/// The organization's DICOM receiver settings, as `lightbox admin
/// list-dicom-peers` shows them.
pub struct DicomSettings {
    ae_title: String,
    peers: Vec<PeerRow>,
}

pub struct PeerRow {
    id: String,
    calling_ae_title: String,
    address: String,
    added: String,
}

/// A webhook endpoint: never its secret.
pub struct WebhookRow {
    id: String,
    url: String,
    events: String,
    /// `organization`, or the API key whose studies it covers.
    scope: String,
    enabled: bool,
    disabled_reason: String,
    last_delivery: String,
}

pub struct DeliveryRow {
    id: String,
    event_type: String,
    endpoint: String,
    status: &'static str,
    attempts: u32,
    last_result: String,
    created: String,
}

/// Recent deliveries shown (the CLI lists more).
const RECENT_DELIVERIES: u32 = 25;

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
    let dicom = match dicom_settings(state, user).await {
        Ok(dicom) => dicom,
        Err(e) => return internal(e),
    };
    let (webhooks, deliveries) = match webhook_rows(state, user).await {
        Ok(rows) => rows,
        Err(e) => return internal(e),
    };
    render(
        status,
        &AdminPage {
            dicom,
            webhooks,
            deliveries,
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

async fn dicom_settings(
    state: &WebState,
    user: &WebUser,
) -> Result<DicomSettings, lightbox_store::StoreError> {
    let title = state.store.dicom_ae_title(user.org_id).await?;
    let peers = state.store.dicom_peers(user.org_id).await?;
    Ok(DicomSettings {
        ae_title: title.map(|t| t.to_string()).unwrap_or_default(),
        peers: peers
            .into_iter()
            .map(|p| PeerRow {
                id: p.id,
                calling_ae_title: p.peer.calling_ae_title.unwrap_or_default(),
                address: p.peer.address.map(|a| a.to_string()).unwrap_or_default(),
                added: super::worklist::when(p.created_at),
            })
            .collect(),
    })
}

/// How a delivery ended (or stands), in a few words.
fn delivery_result(d: &lightbox_store::Delivery) -> String {
    let http = d.last_status.map(|s| format!("HTTP {s}"));
    match (http, d.last_error.as_deref()) {
        (Some(http), Some(error)) if !error.starts_with("HTTP") => format!("{http}: {error}"),
        (_, Some(error)) => error.to_owned(),
        (Some(http), None) => http,
        (None, None) => "not attempted yet".into(),
    }
}

async fn webhook_rows(
    state: &WebState,
    user: &WebUser,
) -> Result<(Vec<WebhookRow>, Vec<DeliveryRow>), lightbox_store::StoreError> {
    let endpoints = state.store.webhook_endpoints(user.org_id).await?;
    let mut rows = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let last = state
            .store
            .list_deliveries(user.org_id, None, Some(&e.id), 1)
            .await?;
        rows.push(WebhookRow {
            id: e.id.to_string(),
            url: e.url,
            events: if e.event_types.is_empty() {
                "all".into()
            } else {
                e.event_types
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            scope: e
                .api_key_id
                .map(|k| format!("API key {k}"))
                .unwrap_or_else(|| "organization".into()),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.unwrap_or_default(),
            last_delivery: match last.first() {
                Some(d) => format!(
                    "{} ({}), {}",
                    d.status.as_str(),
                    delivery_result(d),
                    super::worklist::when(d.created_at)
                ),
                None => "none yet".into(),
            },
        });
    }
    let deliveries = state
        .store
        .list_deliveries(user.org_id, None, None, RECENT_DELIVERIES)
        .await?
        .iter()
        .map(|d| DeliveryRow {
            id: d.id.to_string(),
            event_type: d.event_type.as_str().to_owned(),
            endpoint: d.endpoint_id.to_string(),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_result: delivery_result(d),
            created: super::worklist::when(d.created_at),
        })
        .collect();
    Ok((rows, deliveries))
}

/// A change to the DICOM settings refused by its rules: the page again,
/// with why (and the refusal audited, like the CLI's errors are shown).
async fn dicom_refused(state: &WebState, user: &WebUser, action: &str, e: Error) -> Response {
    let status = match e {
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    audit::record(
        state,
        &user.origin,
        user.org_id,
        &user.user.reference.id,
        action,
        None,
        status.as_u16(),
    )
    .await;
    page(state, user, status, None, Some(e.to_string()), None).await
}

/// After a DICOM settings change: audited, or undone is impossible, so a
/// failure to audit is at least logged; then back to the page.
async fn dicom_changed(state: &WebState, user: &WebUser, action: &str, resource: &str) -> Response {
    if !audit::record(
        state,
        &user.origin,
        user.org_id,
        &user.user.reference.id,
        action,
        Some(resource),
        303,
    )
    .await
    {
        tracing::error!(
            action,
            "admin: a DICOM settings change could not be audited"
        );
    }
    Redirect::to("/ui/admin#dicom-heading").into_response()
}

#[derive(Deserialize)]
pub struct AeTitleForm {
    ae_title: String,
}

/// Sets the organization's called AE title (`lightbox admin set-ae-title`).
pub async fn set_ae_title(
    State(state): State<WebState>,
    user: WebUser,
    HtmlForm(form): HtmlForm<AeTitleForm>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    const ACTION: &str = "dicom_ae_title.set";
    let title = match lightbox_domain::dicom::AeTitle::parse(&form.ae_title) {
        Ok(title) => title,
        Err(e) => return dicom_refused(&state, &user, ACTION, e).await,
    };
    match state.store.set_dicom_ae_title(user.org_id, &title).await {
        Ok(()) => dicom_changed(&state, &user, ACTION, title.as_str()).await,
        Err(e @ (Error::Conflict(_) | Error::Invalid { .. })) => {
            dicom_refused(&state, &user, ACTION, e).await
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct PeerForm {
    #[serde(default)]
    calling_ae_title: String,
    #[serde(default)]
    address: String,
}

/// Allows a sender (`lightbox admin allow-dicom-peer`): a calling AE title,
/// an address, or both.
pub async fn allow_peer(
    State(state): State<WebState>,
    user: WebUser,
    HtmlForm(form): HtmlForm<PeerForm>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    const ACTION: &str = "dicom_peer.allow";
    let given = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
    let peer = match lightbox_domain::dicom::DicomPeer::new(
        given(&form.calling_ae_title).as_deref(),
        given(&form.address).as_deref(),
    ) {
        Ok(peer) => peer,
        Err(e) => return dicom_refused(&state, &user, ACTION, e).await,
    };
    match state.store.add_dicom_peer(user.org_id, &peer).await {
        Ok(id) => dicom_changed(&state, &user, ACTION, &id).await,
        Err(e @ (Error::Conflict(_) | Error::Invalid { .. })) => {
            dicom_refused(&state, &user, ACTION, e).await
        }
        Err(e) => internal(e),
    }
}

/// Removes an allowed sender (`lightbox admin remove-dicom-peer`); another
/// organization's entry is "not found", like a made-up one.
pub async fn remove_peer(
    State(state): State<WebState>,
    user: WebUser,
    Path(peer_id): Path<String>,
) -> Response {
    if !is_admin(&user) {
        return forbidden();
    }
    match state.store.remove_dicom_peer(user.org_id, &peer_id).await {
        Ok(true) => dicom_changed(&state, &user, "dicom_peer.remove", &peer_id).await,
        Ok(false) => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such allowed sender.",
        ),
        Err(e) => internal(e),
    }
}
