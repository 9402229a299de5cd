//! Lightbox's web app for people (radiologists, front desk, clinic admins),
//! served by `lightbox serve` under `/ui`: server-rendered askama templates,
//! a vendored htmx for partial updates, and handlers that call the store
//! directly with the signed-in user's organization (never the JSON API).
//!
//! # Layout
//! * `login`: sessions (cookie → [`login::WebUser`]), sign-in, sign-out, and
//!   the invitation and password-reset pages.
//! * `links`: the signed invitation and reset links (also printed by `lightbox admin`).
//! * `password`: the rules for a new password, argon2id hashing.
//! * `oidc`: optional sign-in through the clinic's OpenID Provider (code + PKCE).
//! * `throttle`: failed sign-ins per account and per address.
//! * `guard`: what every response and every unsafe request passes through:
//!   security headers and the cross-origin (CSRF) check.
//! * `views`: the pages; `views::worklist` is the radiologist's list.
//! * `assets`: the vendored and hand-written browser files, content-hashed.
//! * `audit`: the web's entries in the organization's audit trail.
//!
//! Every action is a plain form post that answers with a redirect or a page;
//! htmx (when scripts run) turns some into fragment swaps. The router comes
//! with its state applied, so the binary merges it inside the shared layers
//! (request id, trace, panic handler) without this crate knowing `AppState`.

mod assets;
mod audit;
mod guard;
pub mod links;
mod login;
pub mod oidc;
pub mod password;
mod throttle;
mod views;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use lightbox_api::audit::AuditLog;
use lightbox_blob::{BlobStore, UrlSigner};
use lightbox_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the web app.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The externally visible base URL; its origin is also accepted by the CSRF check,
    /// and `https://` there marks cookies `Secure` with the `__Host-` prefix.
    pub public_url: Option<String>,
    /// A session unused this long ends (HIPAA automatic logoff; default 30 min).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however active (default 12 h).
    pub absolute_timeout: Duration,
    /// Failed sign-ins allowed per account per `throttle_window`
    /// (four times as many per client address); 0 turns throttling off.
    pub max_failed_sign_ins: u32,
    pub throttle_window: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// How long an image's upload link stays valid (the API's signed-URL TTL).
    pub signed_url_ttl: Duration,
    /// Sign-in through an OpenID Provider, besides passwords; off when `None`.
    pub oidc: Option<oidc::OidcConfig>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            public_url: None,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            max_failed_sign_ins: 5,
            throttle_window: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
            signed_url_ttl: Duration::from_secs(3600),
            oidc: None,
        }
    }
}

impl WebConfig {
    /// Cookies get `Secure` and the `__Host-` prefix when the app is reached over HTTPS.
    fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

#[derive(Clone)]
pub struct WebState {
    store: Store,
    signer: UrlSigner,
    audit: AuditLog,
    /// Where image bytes go: the intake page hands out the same upload links as the API.
    blobs: BlobStore,
    config: Arc<WebConfig>,
    throttle: Arc<throttle::Throttle>,
    /// Becomes true when the server stops; live streams end on it.
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The OpenID Provider, when OIDC sign-in is configured.
    oidc: Option<Arc<oidc::Provider>>,
}

impl WebState {
    /// `signer`, `blobs` and `audit` are the API's: links, files and the audit trail are shared.
    /// `shutdown` turns true when the server stops (graceful shutdown waits for
    /// open responses, and a live stream never ends by itself).
    pub fn new(
        store: Store,
        signer: UrlSigner,
        blobs: BlobStore,
        audit: AuditLog,
        config: WebConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> WebState {
        let throttle = throttle::Throttle::new(config.max_failed_sign_ins, config.throttle_window);
        let oidc = config
            .oidc
            .clone()
            .map(|c| Arc::new(oidc::Provider::new(c)));
        WebState {
            store,
            signer,
            blobs,
            audit,
            config: Arc::new(config),
            throttle: Arc::new(throttle),
            shutdown,
            oidc,
        }
    }

    /// Fetches the OpenID Provider's discovery document and keys ahead of the
    /// first sign-in. A failure is only logged: the provider is asked again
    /// when someone presses the button, and password sign-in never needs it.
    pub async fn warm_oidc(&self) {
        if let Some(provider) = &self.oidc {
            match provider.metadata(false).await {
                Ok(_) => tracing::info!(
                    issuer = provider.config().issuer,
                    "OIDC provider discovered"
                ),
                Err(e) => tracing::warn!(
                    issuer = provider.config().issuer,
                    error = e,
                    "OIDC provider discovery failed; single sign-on is unavailable until it answers"
                ),
            }
        }
    }
}

/// The web app's routes, state applied: `/` (a redirect) and everything under `/ui`.
pub fn router(state: WebState) -> Router {
    let ui = Router::new()
        .route("/", get(views::home))
        .route("/login", get(login::sign_in_page).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route(
            "/invite/{token}",
            get(login::invitation_page).post(login::accept_invitation),
        )
        .route(
            "/reset/{token}",
            get(login::reset_page).post(login::reset_password),
        )
        .route("/oidc/start", get(oidc::start))
        .route("/oidc/callback", get(oidc::callback))
        .route("/assets/{name}", get(assets::serve))
        .merge(views::router())
        .fallback(views::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::cross_origin_check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::security_headers,
        ))
        .with_state(state);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .nest("/ui", ui)
}
