//! Sessions and the pages that create them.
//!
//! A session is a random 256-bit token in a cookie (`HttpOnly`, `SameSite=Lax`;
//! `Secure` and `__Host-` over HTTPS) and a `web_sessions` row keyed by its
//! SHA-256, so the database never holds a usable token. A session ends after
//! `idle_timeout` without requests, `absolute_timeout` after sign-in, at
//! sign-out, and when the user loses access (the store deletes their rows in
//! the transaction that deactivates them; [`WebUser`] also checks the user on
//! every request). Signing in always makes a new token (no session fixation).

use crate::audit::{self, Origin};
use crate::views::{error_page, render, AssetUrlsRef, HtmlForm};
use crate::{links, password, WebState};
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_blob::SignError;
use lightbox_domain::credentials::{hash_secret, random_secret};
use lightbox_domain::invitation::{Invitation, InvitationId};
use lightbox_domain::user::User;
use lightbox_domain::{Error, OrgId, Timestamp};
use lightbox_store::NewWebSession;
use serde::Deserialize;
use std::time::Duration;

/// The signed-in person behind a request: the web's `Caller`.
pub struct WebUser {
    pub org_id: OrgId,
    pub user: User,
    pub origin: Origin,
    token_hash: String,
}

impl WebUser {
    /// The digest of this request's session token (its row's key).
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }
}

fn cookie_name(state: &WebState) -> &'static str {
    lightbox_api::capability::web_session_cookie_name(state.config.public_url.as_deref())
}

/// The session token from the request's `Cookie` headers.
fn session_token(headers: &HeaderMap, name: &str) -> Option<String> {
    lightbox_api::capability::cookie(headers, name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn set_cookie(state: &WebState, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(state),
        max_age.as_secs()
    ))
    .expect("the token is base64url")
}

/// Where a request without a (valid) session goes: the sign-in page, then back.
fn to_sign_in(parts: &Parts, expired: bool) -> Response {
    let original = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| parts.uri.clone());
    let next = original
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/ui");
    let mut target = format!(
        "/ui/login?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    );
    if expired {
        target.push_str("&expired=1");
    }
    if parts.headers.contains_key("hx-request") {
        // htmx would swap a sign-in page into a fragment; it follows HX-Redirect instead.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    Redirect::to(&target).into_response()
}

impl FromRequestParts<WebState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<WebUser, Response> {
        let Some(token) = session_token(&parts.headers, cookie_name(state)) else {
            return Err(to_sign_in(parts, false));
        };
        let token_hash = hash_secret(&token);
        let internal = |e: lightbox_store::StoreError| {
            tracing::error!(error = %e, "loading a web session");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again in a moment.",
            )
        };
        let Some(session) = state
            .store
            .web_session(&token_hash)
            .await
            .map_err(internal)?
        else {
            return Err(to_sign_in(parts, false));
        };
        let now = Timestamp::now();
        let idle = state.config.idle_timeout.as_millis() as i64;
        if now >= session.expires_at || now.millis() - session.last_seen_at.millis() >= idle {
            state
                .store
                .delete_web_session(&token_hash)
                .await
                .map_err(internal)?;
            return Err(to_sign_in(parts, true));
        }
        let user = state
            .store
            .user(session.org_id, &session.user_id)
            .await
            .map_err(internal)?;
        let Some(user) = user.filter(|u| u.is_active && u.has_dashboard_access) else {
            state
                .store
                .delete_web_session(&token_hash)
                .await
                .map_err(internal)?;
            return Err(to_sign_in(parts, false));
        };
        // One write per quarter of the idle timeout (at most a minute), not per request.
        if now.millis() - session.last_seen_at.millis() >= (idle / 4).min(60_000) {
            state
                .store
                .touch_web_session(&token_hash, now)
                .await
                .map_err(internal)?;
        }
        Ok(WebUser {
            org_id: session.org_id,
            user,
            origin: Origin::of(parts, state.config.trust_forwarded_for),
            token_hash,
        })
    }
}

/// Whether the request carries a live session (for pages that differ when signed in).
pub async fn is_signed_in(parts: &mut Parts, state: &WebState) -> bool {
    WebUser::from_request_parts(parts, state).await.is_ok()
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct SignInPage<'a> {
    pub assets: AssetUrlsRef,
    pub email: &'a str,
    pub next: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<String>,
    /// The single sign-on button's label, when OIDC is configured.
    pub oidc_button: Option<String>,
}

fn oidc_button(state: &WebState) -> Option<String> {
    state.oidc.as_ref().map(|p| p.config().button_label())
}

#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    expired: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
    #[serde(default)]
    password_set: Option<String>,
}

/// Only paths inside the app, so `next` cannot send anyone to another site
/// (nor break a header or a signed token with a control character).
pub(crate) fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui")
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
    {
        next
    } else {
        "/ui"
    }
}

pub async fn sign_in_page(
    State(state): State<WebState>,
    Query(query): Query<SignInQuery>,
    mut parts: Parts,
) -> Response {
    if is_signed_in(&mut parts, &state).await {
        return Redirect::to(safe_next(&query.next)).into_response();
    }
    let notice = if query.expired.is_some() {
        Some("Your session has ended. Sign in again to continue.")
    } else if query.signed_out.is_some() {
        Some("You have signed out.")
    } else if query.password_set.is_some() {
        Some("Your password is set. Sign in with it now.")
    } else {
        None
    };
    render(
        StatusCode::OK,
        &SignInPage {
            assets: crate::assets::urls(),
            email: "",
            next: safe_next(&query.next),
            notice,
            error: None,
            oidc_button: oidc_button(&state),
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn sign_in(
    State(state): State<WebState>,
    parts: Parts,
    HtmlForm(form): HtmlForm<SignInForm>,
) -> Response {
    let origin = Origin::of(&parts, state.config.trust_forwarded_for);
    let address = origin.client_ip.clone().unwrap_or_default();
    let email = form.email.trim();
    let refuse = |status: StatusCode, error: String| {
        render(
            status,
            &SignInPage {
                assets: crate::assets::urls(),
                email,
                next: safe_next(&form.next),
                notice: None,
                error: Some(error),
                oidc_button: oidc_button(&state),
            },
        )
    };
    if email.is_empty() || email.len() > 254 || form.password.len() > password::MAX_LENGTH * 4 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your e-mail address and password.".into(),
        );
    }
    let accounts = match state.store.sign_in_accounts(email).await {
        Ok(accounts) => accounts,
        Err(e) => {
            tracing::error!(error = %e, "sign-in lookup");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again in a moment.",
            );
        }
    };
    if let Some(wait) = state.throttle.blocked_for(email, &address) {
        if let Some(account) = accounts.first() {
            audit::record(
                &state,
                &origin,
                account.org_id,
                &account.user.reference.id,
                "user.sign_in",
                None,
                429,
            )
            .await;
        }
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
        );
    }
    // Hashing is slow on purpose: keep it off the async workers.
    let password = form.password.clone();
    let candidates: Vec<(usize, String)> = accounts
        .iter()
        .enumerate()
        .filter_map(|(n, a)| a.password_hash.clone().map(|h| (n, h)))
        .collect();
    let matched = tokio::task::spawn_blocking(move || {
        if candidates.is_empty() {
            password::verify_nothing(&password);
            return None;
        }
        candidates
            .into_iter()
            .find(|(_, hash)| password::verify(&password, hash))
            .map(|(n, _)| n)
    })
    .await
    .ok()
    .flatten();
    let account = matched
        .map(|n| &accounts[n])
        .filter(|a| a.user.is_active && a.user.has_dashboard_access);
    let Some(account) = account else {
        state.throttle.record_failure(email, &address);
        for account in &accounts {
            audit::record(
                &state,
                &origin,
                account.org_id,
                &account.user.reference.id,
                "user.sign_in",
                None,
                401,
            )
            .await;
        }
        if accounts.is_empty() {
            tracing::info!(
                client_ip = address,
                "sign-in with an unknown e-mail address"
            );
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "That e-mail address and password do not match an account that may sign in.".into(),
        );
    };
    state.throttle.record_success(email);
    begin_session(
        &state,
        &parts,
        account.org_id,
        &account.user.reference.id,
        None,
        &form.next,
    )
    .await
}

/// Starts a session for a user who has just proved who they are (password or
/// OIDC): a new token (a session the browser already had ends), the sign-in
/// recorded on the user and in the audit trail (`method` as its resource id),
/// and the redirect to `next` with the cookie.
pub(crate) async fn begin_session(
    state: &WebState,
    parts: &Parts,
    org_id: OrgId,
    user_id: &lightbox_domain::UserId,
    method: Option<&str>,
    next: &str,
) -> Response {
    let origin = Origin::of(parts, state.config.trust_forwarded_for);
    if let Some(old) = session_token(&parts.headers, cookie_name(state)) {
        let _ = state.store.delete_web_session(&hash_secret(&old)).await;
    }
    let token = random_secret();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let created = state
        .store
        .create_web_session(
            &NewWebSession {
                token_hash: &hash_secret(&token),
                org_id,
                user_id,
                expires_at: Timestamp::now()
                    .plus_seconds(state.config.absolute_timeout.as_secs() as i64),
                user_agent,
            },
            Timestamp::now().plus_seconds(-(state.config.idle_timeout.as_secs() as i64)),
        )
        .await;
    if let Err(e) = created {
        tracing::error!(error = %e, "storing a web session");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Try again in a moment.",
        );
    }
    if !audit::record(state, &origin, org_id, user_id, "user.sign_in", method, 303).await {
        let _ = state.store.delete_web_session(&hash_secret(&token)).await;
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "The audit trail cannot be written right now. Try again in a moment.",
        );
    }
    let mut response = Redirect::to(safe_next(next)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(state, &token, state.config.absolute_timeout),
    );
    response
}

pub async fn sign_out(State(state): State<WebState>, user: WebUser) -> Response {
    if let Err(e) = state.store.delete_web_session(&user.token_hash).await {
        tracing::error!(error = %e, "ending a web session");
    }
    audit::record(
        &state,
        &user.origin,
        user.org_id,
        &user.user.reference.id,
        "user.sign_out",
        None,
        303,
    )
    .await;
    let mut response = Redirect::to("/ui/login?signed_out=1").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, "", Duration::ZERO));
    response
}

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage<'a> {
    assets: AssetUrlsRef,
    title: &'a str,
    intro: String,
    email: &'a str,
    min_length: usize,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    password: String,
    confirm: String,
}

fn link_error(e: SignError) -> Response {
    match e {
        SignError::Expired => error_page(
            StatusCode::GONE,
            "Link expired",
            "This link has expired. Ask your clinic's administrator for a new one.",
        ),
        SignError::Invalid => error_page(
            StatusCode::FORBIDDEN,
            "Invalid link",
            "This link is not valid. Check that it was copied whole.",
        ),
    }
}

fn domain_error(e: Error) -> Response {
    match e {
        Error::Gone(message) => error_page(StatusCode::GONE, "Link already used", &message),
        Error::NotFound(message) => error_page(StatusCode::NOT_FOUND, "Not found", &message),
        other => {
            tracing::error!(error = %other, "setting a password");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Try again in a moment.",
            )
        }
    }
}

/// The pending invitation a link opens, or the page that says why not.
async fn open_invitation(state: &WebState, token: &str) -> Result<Invitation, Response> {
    let claims = state
        .signer
        .verify(token, links::INVITE, Timestamp::now().millis())
        .map_err(link_error)?;
    let (Ok(org_id), Ok(id)) = (
        OrgId::parse(&claims.org),
        InvitationId::parse(&claims.subject),
    ) else {
        return Err(link_error(SignError::Invalid));
    };
    let invitation = state
        .store
        .invitation(org_id, &id)
        .await
        .map_err(|e| domain_error(e.into()))?
        .ok_or_else(|| {
            error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "This invitation no longer exists.",
            )
        })?;
    invitation.ensure_open(Timestamp::now()).map_err(|_| {
        error_page(
            StatusCode::GONE,
            "Invitation no longer open",
            "This invitation has already been used, was withdrawn, or has expired. \
             If you have set a password, sign in; otherwise ask for a new invitation.",
        )
    })?;
    Ok(invitation)
}

fn invitation_form(invitation: &Invitation, status: StatusCode, error: Option<String>) -> Response {
    render(
        status,
        &SetPasswordPage {
            assets: crate::assets::urls(),
            title: "Welcome to Lightbox",
            intro: format!(
                "You have been invited as {} {}. Choose a password to finish setting up your account.",
                invitation.user.reference.first_name, invitation.user.reference.last_name
            ),
            email: &invitation.user.reference.email,
            min_length: password::MIN_LENGTH,
            error,
        },
    )
}

pub async fn invitation_page(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    match open_invitation(&state, &token).await {
        Ok(invitation) => invitation_form(&invitation, StatusCode::OK, None),
        Err(page) => page,
    }
}

/// Checks a new password against the rules, then hashes it off the async workers.
async fn new_password_hash(form: &SetPasswordForm, email: &str) -> Result<String, String> {
    if form.password != form.confirm {
        return Err("The two passwords are not the same.".into());
    }
    password::check_new(&form.password, email)?;
    let password = form.password.clone();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| "Something went wrong. Try again.".to_owned())
}

pub async fn accept_invitation(
    State(state): State<WebState>,
    Path(token): Path<String>,
    parts: Parts,
    HtmlForm(form): HtmlForm<SetPasswordForm>,
) -> Response {
    let invitation = match open_invitation(&state, &token).await {
        Ok(invitation) => invitation,
        Err(page) => return page,
    };
    let hash = match new_password_hash(&form, &invitation.user.reference.email).await {
        Ok(hash) => hash,
        Err(message) => {
            return invitation_form(&invitation, StatusCode::UNPROCESSABLE_ENTITY, Some(message))
        }
    };
    let user = match state
        .store
        .accept_invitation(invitation.org_id, &invitation.id, &hash)
        .await
    {
        Ok(user) => user,
        Err(e) => return domain_error(e),
    };
    let origin = Origin::of(&parts, state.config.trust_forwarded_for);
    audit::record(
        &state,
        &origin,
        invitation.org_id,
        &user.reference.id,
        "invitation.accept",
        Some(invitation.id.as_str()),
        303,
    )
    .await;
    Redirect::to("/ui/login?password_set=1").into_response()
}

fn reset_form(user: &User, status: StatusCode, error: Option<String>) -> Response {
    render(
        status,
        &SetPasswordPage {
            assets: crate::assets::urls(),
            title: "Choose a new password",
            intro: "Choose a new password for your Lightbox account. \
                    Any browser signed in to it is signed out."
                .into(),
            email: &user.reference.email,
            min_length: password::MIN_LENGTH,
            error,
        },
    )
}

/// The user a reset link is for, while the link is unused and they may sign in.
async fn open_reset(
    state: &WebState,
    token: &str,
) -> Result<(links::ResetClaims, User, Option<String>), Response> {
    let claims = links::verify_reset(&state.signer, token).map_err(link_error)?;
    let used = || {
        error_page(
            StatusCode::GONE,
            "Link already used",
            "This link has already been used. Ask for a new one if you need it.",
        )
    };
    let user = state
        .store
        .user(claims.org_id, &claims.user_id)
        .await
        .map_err(|e| domain_error(e.into()))?
        .filter(|u| u.is_active)
        .ok_or_else(used)?;
    let current = state
        .store
        .password_hash(claims.org_id, &claims.user_id)
        .await
        .map_err(|e| domain_error(e.into()))?;
    if !claims.is_current(current.as_deref()) {
        return Err(used());
    }
    Ok((claims, user, current))
}

pub async fn reset_page(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    match open_reset(&state, &token).await {
        Ok((_, user, _)) => reset_form(&user, StatusCode::OK, None),
        Err(page) => page,
    }
}

pub async fn reset_password(
    State(state): State<WebState>,
    Path(token): Path<String>,
    parts: Parts,
    HtmlForm(form): HtmlForm<SetPasswordForm>,
) -> Response {
    let (claims, user, current) = match open_reset(&state, &token).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let hash = match new_password_hash(&form, &user.reference.email).await {
        Ok(hash) => hash,
        Err(message) => return reset_form(&user, StatusCode::UNPROCESSABLE_ENTITY, Some(message)),
    };
    if let Err(e) = state
        .store
        .reset_password(claims.org_id, &claims.user_id, current.as_deref(), &hash)
        .await
    {
        return domain_error(e);
    }
    let origin = Origin::of(&parts, state.config.trust_forwarded_for);
    audit::record(
        &state,
        &origin,
        claims.org_id,
        &claims.user_id,
        "user.reset_password",
        Some(claims.user_id.as_str()),
        303,
    )
    .await;
    Redirect::to("/ui/login?password_set=1").into_response()
}
