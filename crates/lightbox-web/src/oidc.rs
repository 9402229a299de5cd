//! Optional sign-in through the clinic's OpenID Provider (Keycloak, Entra ID…):
//! the authorization code flow with PKCE (S256), `state` and `nonce`, as a
//! confidential client (the secret stays on the server).
//!
//! * Discovery (`<issuer>/.well-known/openid-configuration` and its JWKS) is
//!   fetched lazily and cached for [`METADATA_TTL`]; a provider that is down
//!   costs only its own button (an error on the sign-in page), never
//!   start-up or password sign-in.
//! * The attempt's `state`, `nonce`, PKCE verifier and where to go afterwards
//!   live in a short-lived cookie signed with the API's URL-signing key (its
//!   own purpose), so any replica can finish an attempt another one began,
//!   and no server memory holds it. The cookie is `HttpOnly` and scoped to
//!   `/ui/oidc`; its contents are only useful together with the code the
//!   provider sends to this browser.
//! * The ID token is checked by `openidconnect` (signature against the JWKS,
//!   `iss`, `aud`, `exp`, `nonce`); its `email` is used only when
//!   `email_verified` is true (or, from Entra ID, which never sends that for
//!   work accounts, its optional `xms_edov` claim: the address's domain is
//!   verified by the tenant that owns it), and must belong to exactly one active
//!   user with dashboard access (no account is ever created here).

use crate::audit::{self, Origin};
use crate::login::{self, SignInPage};
use crate::views::render;
use crate::WebState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lightbox_blob::Claims;
use lightbox_domain::error::with_causes;
use lightbox_domain::Timestamp;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

/// Settings of OIDC sign-in; present only when an issuer and a client id are set.
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's discovery document names it.
    pub issuer: String,
    pub client_id: String,
    /// The confidential client's secret (sent to the token endpoint only).
    pub client_secret: Option<String>,
    /// The button's provider name ("Sign in with Keycloak").
    pub display_name: Option<String>,
    /// Scopes asked for besides `openid email`.
    pub extra_scopes: Vec<String>,
    /// Where the provider sends the browser back: `<public_url>/ui/oidc/callback`.
    pub redirect_uri: String,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("display_name", &self.display_name)
            .field("extra_scopes", &self.extra_scopes)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

impl OidcConfig {
    /// The sign-in button's text.
    pub fn button_label(&self) -> String {
        match &self.display_name {
            Some(name) => format!("Sign in with {name}"),
            None => "Sign in with single sign-on".to_owned(),
        }
    }

    /// How messages name the provider.
    fn provider_name(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| "your identity provider".to_owned())
    }

    /// Checks what can be checked without the provider: URLs that parse.
    pub fn validate(&self) -> Result<(), String> {
        IssuerUrl::new(self.issuer.clone())
            .map_err(|e| format!("the OIDC issuer `{}` is not a URL: {e}", self.issuer))?;
        RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| format!("the OIDC redirect URI is not a URL: {e}"))?;
        Ok(())
    }
}

/// How long discovery (metadata and keys) is reused before it is fetched again.
/// A token signed with a key the cached set lacks also refetches it, once.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The soonest keys are fetched again for a token signed with an unknown key.
const MIN_REFETCH: Duration = Duration::from_secs(60);

/// How long after a failed discovery the provider is not asked again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long a started sign-in may take at the provider.
const ATTEMPT_TTL_SECS: i64 = 10 * 60;

/// The signer purpose of the attempt cookie.
const PURPOSE: &str = "web-oidc-attempt";

const COOKIE_PATH: &str = "/ui/oidc";

/// The configured provider, with its discovery cache.
pub struct Provider {
    config: OidcConfig,
    http: HttpClient,
    discovery: Mutex<Discovery>,
}

#[derive(Default)]
struct Discovery {
    fetched: Option<(Instant, CoreProviderMetadata)>,
    failed_at: Option<Instant>,
}

impl Provider {
    pub fn new(config: OidcConfig) -> Provider {
        let client = reqwest::Client::builder()
            // The token endpoint must answer itself: following redirects
            // would resend the code and secret wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client with a timeout and no redirects builds");
        Provider {
            config,
            http: HttpClient(client),
            discovery: Mutex::new(Discovery::default()),
        }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The provider's metadata and keys, from the cache unless stale or
    /// `refresh` (a new key; at most once per [`MIN_REFETCH`]). One fetch at a
    /// time; after a failure, presses within [`RETRY_AFTER`] fail at once
    /// instead of each waiting for a provider that is down.
    pub async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, String> {
        let mut discovery = self.discovery.lock().await;
        if let Some((at, metadata)) = &discovery.fetched {
            let age = at.elapsed();
            if (!refresh && age < METADATA_TTL) || (refresh && age < MIN_REFETCH) {
                return Ok(metadata.clone());
            }
        }
        if discovery
            .failed_at
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
        {
            return Err("the provider did not answer moments ago".into());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(metadata) => {
                discovery.fetched = Some((Instant::now(), metadata.clone()));
                discovery.failed_at = None;
                Ok(metadata)
            }
            Err(e) => {
                discovery.failed_at = Some(Instant::now());
                Err(with_causes(&e))
            }
        }
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        String,
    > {
        let redirect =
            RedirectUrl::new(self.config.redirect_uri.clone()).map_err(|e| e.to_string())?;
        // HTTP Basic (the spec's default), unless the provider accepts only the form field.
        let post_only = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| {
                !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost)
            });
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }
}

/// `name` at the start of a sentence.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `openidconnect`'s HTTP client interface over the workspace's reqwest.
pub struct HttpClient(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.0.execute(request).await?;
            let mut builder = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            Ok(builder
                .body(body)
                .expect("status and headers came from a response"))
        })
    }
}

fn cookie_name(state: &WebState) -> &'static str {
    // `__Host-` would need Path=/; `__Secure-` allows the narrow path.
    if state.config.secure_cookies() {
        "__Secure-lightbox_oidc"
    } else {
        "lightbox_oidc"
    }
}

fn attempt_cookie(state: &WebState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
        cookie_name(state)
    ))
    .expect("the token is base64url and a dot")
}

/// One sign-in attempt, as carried by its cookie.
struct Attempt {
    state: String,
    nonce: String,
    pkce_verifier: String,
    next: String,
}

impl Attempt {
    fn seal(&self, state: &WebState) -> String {
        state.signer.sign(&Claims {
            purpose: PURPOSE.into(),
            org: String::new(),
            subject: format!(
                "{}|{}|{}|{}",
                self.state, self.nonce, self.pkce_verifier, self.next
            ),
            expires_at_ms: Timestamp::now().plus_seconds(ATTEMPT_TTL_SECS).millis(),
        })
    }

    fn open(state: &WebState, token: &str) -> Option<Attempt> {
        let claims = state
            .signer
            .verify(token, PURPOSE, Timestamp::now().millis())
            .ok()?;
        let mut parts = claims.subject.splitn(4, '|');
        Some(Attempt {
            state: parts.next()?.to_owned(),
            nonce: parts.next()?.to_owned(),
            pkce_verifier: parts.next()?.to_owned(),
            next: parts.next()?.to_owned(),
        })
    }
}

/// The sign-in page with an error, for every way an OIDC attempt can fail.
fn refuse(state: &WebState, status: StatusCode, next: &str, error: String) -> Response {
    let mut response = render(
        status,
        &SignInPage {
            assets: crate::assets::urls(),
            email: "",
            next: login::safe_next(next),
            notice: None,
            error: Some(error),
            oidc_button: state.oidc.as_ref().map(|p| p.config.button_label()),
        },
    );
    // An attempt is used once, whatever its outcome.
    response
        .headers_mut()
        .insert(header::SET_COOKIE, attempt_cookie(state, "", 0));
    response
}

#[derive(Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    next: String,
}

/// The routes of a server without OIDC: 404, pointing to password sign-in.
fn not_configured() -> Response {
    crate::views::error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "Single sign-on is not set up on this server. Sign in with your password.",
    )
}

/// `GET /ui/oidc/start`: sends the browser to the provider.
pub async fn start(
    State(state): State<WebState>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let Some(provider) = state.oidc.clone() else {
        return not_configured();
    };
    let next = login::safe_next(&query.next).to_owned();
    let name = provider.config.provider_name();
    let unavailable = || {
        refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            &next,
            format!(
                "Signing in with {name} is not possible right now: the identity provider \
                 cannot be reached. Sign in with your password, or try again later."
            ),
        )
    };
    let client = match provider
        .metadata(false)
        .await
        .and_then(|m| provider.client(m))
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(
                issuer = provider.config.issuer,
                error = e,
                "OIDC discovery failed"
            );
            return unavailable();
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge);
    for scope in &provider.config.extra_scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let attempt = Attempt {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        next,
    };
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        attempt_cookie(&state, &attempt.seal(&state), ATTEMPT_TTL_SECS),
    );
    response
}

#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// An error code from the provider, shown only when it looks like one
/// (`access_denied`), so the page never repeats arbitrary text from a URL.
fn error_code(error: &str) -> Option<&str> {
    (error.len() <= 64
        && !error.is_empty()
        && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    .then_some(error)
}

/// `GET /ui/oidc/callback`: the provider's answer.
pub async fn callback(
    State(state): State<WebState>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    parts: Parts,
) -> Response {
    // A query that does not parse (a parameter twice) is treated as one without a code.
    let query = query.map(|q| q.0).unwrap_or_default();
    let Some(provider) = state.oidc.clone() else {
        return not_configured();
    };
    let origin = Origin::of(&parts, state.config.trust_forwarded_for);
    let address = origin.client_ip.clone().unwrap_or_default();
    let name = provider.config.provider_name();
    let subject = capitalized(&name);
    let attempt = lightbox_api::capability::cookie(&parts.headers, cookie_name(&state))
        .and_then(|token| Attempt::open(&state, token));
    let Some(attempt) = attempt else {
        tracing::info!(
            client_ip = address,
            "OIDC callback without a valid attempt cookie"
        );
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "/ui",
            format!(
                "This sign-in with {name} was not started in this browser, or took longer \
                 than 10 minutes. Start again."
            ),
        );
    };
    let next = attempt.next.as_str();
    let returned_state = query.state.as_deref().unwrap_or("");
    if !bool::from(returned_state.as_bytes().ct_eq(attempt.state.as_bytes())) {
        tracing::info!(
            client_ip = address,
            "OIDC callback with a state that does not match"
        );
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            next,
            format!(
                "This answer from {name} does not belong to the sign-in this browser started. \
                 Start again."
            ),
        );
    }
    if let Some(error) = query.error.as_deref() {
        tracing::info!(
            client_ip = address,
            error = error_code(error),
            "OIDC provider refused"
        );
        let detail = error_code(error)
            .map(|code| format!(" ({code})"))
            .unwrap_or_default();
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            format!(
                "{subject} did not sign you in{detail}. Try again, or sign in with your password."
            ),
        );
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            next,
            format!("The answer from {name} carried no authorization code. Start again."),
        );
    };
    let failed = |what: &str, e: String| {
        tracing::warn!(
            issuer = provider.config.issuer,
            error = e,
            "OIDC sign-in: {what}"
        );
        refuse(
            &state,
            StatusCode::BAD_GATEWAY,
            next,
            format!(
                "Signing in with {name} could not be completed ({what}). Try again, or sign \
                 in with your password."
            ),
        )
    };
    let client = match provider
        .metadata(false)
        .await
        .and_then(|m| provider.client(m))
    {
        Ok(client) => client,
        Err(e) => return failed("the identity provider cannot be reached", e),
    };
    let request = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(request) => request,
        Err(e) => return failed("the provider has no token endpoint", e.to_string()),
    };
    let token = match request
        .set_pkce_verifier(PkceCodeVerifier::new(attempt.pkce_verifier.clone()))
        .request_async(&provider.http)
        .await
    {
        Ok(token) => token,
        Err(e) => return failed("the code was not accepted", with_causes(&e)),
    };
    let Some(id_token) = token.id_token() else {
        return failed(
            "no ID token came back",
            "token response without id_token".into(),
        );
    };
    let nonce = Nonce::new(attempt.nonce.clone());
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(claims) => Ok(claims.clone()),
        // Keys rotate: a key the cached set lacks sends us back for the new set, once.
        Err(ClaimsVerificationError::SignatureVerification(_)) => {
            match provider
                .metadata(true)
                .await
                .and_then(|m| provider.client(m))
            {
                Ok(fresh) => id_token.claims(&fresh.id_token_verifier(), &nonce).cloned(),
                Err(e) => return failed("the identity provider cannot be reached", e),
            }
        }
        Err(e) => Err(e),
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(e) => {
            tracing::warn!(issuer = provider.config.issuer, client_ip = address, error = %e,
                "OIDC ID token refused");
            return refuse(
                &state,
                StatusCode::UNAUTHORIZED,
                next,
                format!("The answer from {name} could not be verified. Start again."),
            );
        }
    };
    let email = claims.email().map(|e| e.as_str().trim().to_owned());
    let verified =
        claims.email_verified() == Some(true) || entra_domain_verified(&id_token.to_string());
    let Some(email) = email.filter(|e| !e.is_empty() && e.len() <= 254) else {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            format!(
                "{subject} did not tell Lightbox your e-mail address, so it cannot find your \
                 account. Ask your administrator to release the `email` claim to Lightbox."
            ),
        );
    };
    finish(
        &state, &parts, &origin, &address, &name, next, &email, verified,
    )
    .await
}

/// Matches the verified e-mail address to one account and signs it in.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &WebState,
    parts: &Parts,
    origin: &Origin,
    address: &str,
    name: &str,
    next: &str,
    email: &str,
    verified: bool,
) -> Response {
    let subject = capitalized(name);
    let accounts = match state.store.sign_in_accounts(email).await {
        Ok(accounts) => accounts,
        Err(e) => {
            tracing::error!(error = %e, "OIDC sign-in lookup");
            return refuse(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                next,
                "Something went wrong. Try again in a moment.".into(),
            );
        }
    };
    let audit_all = |status: u16| audit_refusal(state, origin, &accounts, status);
    if let Some(wait) = state.throttle.blocked_for(email, address) {
        audit_all(429).await;
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return refuse(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
        );
    }
    if !verified {
        state.throttle.record_failure(email, address);
        audit_all(401).await;
        return refuse(
            state,
            StatusCode::UNAUTHORIZED,
            next,
            format!(
                "{subject} has not verified your e-mail address, so Lightbox cannot match it to \
                 an account. Verify it with {name} first, or sign in with your password."
            ),
        );
    }
    let eligible: Vec<_> = accounts
        .iter()
        .filter(|a| a.user.is_active && a.user.has_dashboard_access)
        .collect();
    let account = match eligible.as_slice() {
        [account] => *account,
        [] => {
            state.throttle.record_failure(email, address);
            audit_all(401).await;
            if accounts.is_empty() {
                tracing::info!(
                    client_ip = address,
                    "OIDC sign-in with an unknown e-mail address"
                );
            }
            return refuse(
                state,
                StatusCode::UNAUTHORIZED,
                next,
                format!(
                    "{subject} signed you in as {email}, but no Lightbox account that may sign in \
                     has that address. Ask your clinic's administrator for an invitation."
                ),
            );
        }
        _ => {
            audit_all(409).await;
            return refuse(
                state,
                StatusCode::CONFLICT,
                next,
                format!(
                    "{email} has accounts in several organizations on this server, so \
                     {name} cannot tell which one you mean. Sign in with your password."
                ),
            );
        }
    };
    state.throttle.record_success(email);
    // Signing in through the provider settles a pending invitation: its link stops working.
    match state
        .store
        .accept_invitations_of(account.org_id, &account.user.reference.id)
        .await
    {
        Ok(accepted) => {
            for id in accepted {
                audit::record(
                    state,
                    origin,
                    account.org_id,
                    &account.user.reference.id,
                    "invitation.accept",
                    Some(id.as_str()),
                    303,
                )
                .await;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "accepting an invitation at OIDC sign-in");
            return refuse(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                next,
                "Something went wrong. Try again in a moment.".into(),
            );
        }
    }
    let mut response = login::begin_session(
        state,
        parts,
        account.org_id,
        &account.user.reference.id,
        Some(METHOD),
        next,
    )
    .await;
    response
        .headers_mut()
        .append(header::SET_COOKIE, attempt_cookie(state, "", 0));
    response
}

/// A refused sign-in, in the trail of every organization with a user of that address.
async fn audit_refusal(
    state: &WebState,
    origin: &Origin,
    accounts: &[lightbox_store::SignInAccount],
    status: u16,
) {
    for account in accounts {
        audit::record(
            state,
            origin,
            account.org_id,
            &account.user.reference.id,
            "user.sign_in",
            Some(METHOD),
            status,
        )
        .await;
    }
}

/// The `resourceId` of OIDC sign-in events in the audit trail (password
/// sign-ins have none), so the trail tells the two methods apart.
pub const METHOD: &str = "oidc";

/// Entra ID's optional `xms_edov` ("email domain owner verified") claim of an
/// ID token already verified by `openidconnect`: Entra sends it as `true` or
/// `1` (a string in some token versions) when asked to, and never sends
/// `email_verified` for work accounts.
fn entra_domain_verified(id_token: &str) -> bool {
    use base64::Engine;
    let Some(payload) = id_token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    match &claims["xms_edov"] {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_u64() == Some(1),
        serde_json::Value::String(s) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn only_error_codes_are_repeated_on_the_page() {
        assert_eq!(error_code("access_denied"), Some("access_denied"));
        assert_eq!(error_code("Access denied! Call 555"), None);
        assert_eq!(error_code(""), None);
        assert_eq!(error_code(&"a".repeat(65)), None);
    }
}
