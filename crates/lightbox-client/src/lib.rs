//! A typed async client for Lightbox's two APIs:
//!
//! - **Viewer** (`/v1/viewer/...`, camelCase JSON), authorized by an API key
//!   (`lbk_…`);
//! - **Images** (`/images/v1`, snake_case JSON), authorized by OAuth client
//!   credentials that the client exchanges for an access token at
//!   `/api/auth/v2/token`, caches, and renews before it expires.
//!
//! Listings are [`futures_util::Stream`]s that follow cursors. Requests are
//! bounded by timeouts; 429 and 503 answers are retried after the server's
//! `Retry-After` (a bounded number of times, each wait bounded too), and so
//! are connection failures (every request) and timeouts (reads only).
//! Errors carry the API's own error envelope ([`ApiError`]).
//!
//! ```no_run
//! # async fn demo() -> lightbox_client::Result<()> {
//! use futures_util::TryStreamExt;
//! use lightbox_client::{Client, NewStudy, Severity, StudyFilter};
//!
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .api_key("lbk_…")
//!     .client_credentials("oac_…", "…")
//!     .build()?;
//! let study = client
//!     .create_study(&NewStudy::new("1.2.840.113619.2.55.3", "CT Head", Severity::Stat))
//!     .await?;
//! let stat: Vec<_> = client
//!     .list_studies(StudyFilter { severity: Some(Severity::Stat), ..Default::default() })
//!     .try_collect()
//!     .await?;
//! # Ok(()) }
//! ```

mod error;
mod images;
mod viewer;

pub use error::{ApiError, Envelope, Error, ImagesError, ImagesErrorContent, Result, ViewerError};
use images::TokenResponse;
pub use images::*;
pub use viewer::*;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

/// Builds a [`Client`]; every setting has a sensible default. (No `Debug`:
/// it holds the secrets.)
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    credentials: Option<(String, String)>,
    timeout: Duration,
    connect_timeout: Duration,
    transfer_timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
    token_refresh_margin: Duration,
    user_agent: String,
}

impl ClientBuilder {
    /// The Viewer API key (`lbk_…`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The Images API's OAuth client credentials.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some((client_id.into(), client_secret.into()));
        self
    }

    /// Longest a JSON request may take, answer included (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest a connection may take to open (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest an image upload or download may take (default 10 min).
    pub fn transfer_timeout(mut self, timeout: Duration) -> Self {
        self.transfer_timeout = timeout;
        self
    }

    /// Retries after a 429/503 or a connection failure (default 3; 0 turns them off).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Longest wait before one retry (default 60 s). A `Retry-After` longer
    /// than this is not waited for: the error is returned instead.
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// How long before its expiry an access token is renewed (default 2 min).
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.token_refresh_margin = margin;
        self
    }

    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(self.base_url.trim())
            .map_err(|e| Error::Config(format!("invalid base URL `{}`: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "invalid base URL `{}`: use http://HOST[:PORT][/PREFIX] or https://…",
                self.base_url
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let oauth = self
            .credentials
            .clone()
            .map(|(client_id, client_secret)| OAuth {
                client_id,
                client_secret,
                token: Mutex::new(None),
            });
        let api_key = self.api_key.clone();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key,
                oauth,
                settings: self,
            }),
        })
    }
}

/// A handle on one Lightbox server; cheap to clone, safe to share.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    oauth: Option<OAuth>,
    settings: ClientBuilder,
}

struct OAuth {
    client_id: String,
    client_secret: String,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// How a request is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    ApiKey,
    Token,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the secret.
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.api_key.as_ref().map(|_| "<set>"))
            .field(
                "client_id",
                &self.inner.oauth.as_ref().map(|o| o.client_id.as_str()),
            )
            .finish()
    }
}

impl Client {
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            credentials: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            transfer_timeout: Duration::from_secs(600),
            max_retries: 3,
            max_retry_wait: Duration::from_secs(60),
            token_refresh_margin: Duration::from_secs(120),
            user_agent: format!("lightbox-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The server URL plus path segments, each percent-encoded as one segment.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in build()");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Sends the request `make` builds (once per attempt), retrying as the
    /// module docs say; returns a 2xx response or the error.
    pub(crate) async fn execute(
        &self,
        auth: Auth,
        method: Method,
        url: Url,
        timeout: Option<Duration>,
        make: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        let settings = &self.inner.settings;
        let idempotent = matches!(method, Method::GET | Method::HEAD);
        let mut attempt: u32 = 0;
        let mut renewed_token = false;
        loop {
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .timeout(timeout.unwrap_or(settings.timeout));
            match auth {
                Auth::None => {}
                Auth::ApiKey => {
                    let key = self.inner.api_key.as_deref().ok_or_else(|| {
                        Error::Config(
                            "the Viewer API needs an API key (ClientBuilder::api_key)".into(),
                        )
                    })?;
                    request = request.bearer_auth(key);
                }
                Auth::Token => request = request.bearer_auth(self.access_token().await?),
            }
            let retries_left = attempt < settings.max_retries;
            let outcome = make(request).send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(e) => {
                    // A refused connection never reached the server; a timed-out
                    // write might have, so only reads are repeated after one.
                    let retry = e.is_connect() || (idempotent && e.is_timeout());
                    if retry && retries_left {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Transport {
                        url: url.to_string(),
                        timeout: e.is_timeout(),
                        source: Box::new(e),
                    });
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = retry_after(response.headers());
            if status == StatusCode::UNAUTHORIZED && auth == Auth::Token && !renewed_token {
                // The token may have been issued by a server whose key has
                // since changed: one fresh token, once.
                renewed_token = true;
                self.forget_token().await;
                continue;
            }
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) && retries_left
            {
                let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                if wait <= settings.max_retry_wait {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            let body = response.bytes().await.unwrap_or_default();
            return Err(ApiError::parse(status.as_u16(), &body, retry_after).into());
        }
    }

    /// A JSON request answered with JSON.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        auth: Auth,
        method: Method,
        url: Url,
        make: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<T> {
        let response = self.execute(auth, method, url.clone(), None, make).await?;
        decode(url, response).await
    }

    /// The current access token, fetched or renewed when needed. The lock
    /// makes concurrent callers share one token request.
    async fn access_token(&self) -> Result<String> {
        let oauth = self.inner.oauth.as_ref().ok_or_else(|| {
            Error::Config(
                "the Images API needs OAuth client credentials (ClientBuilder::client_credentials)"
                    .into(),
            )
        })?;
        let mut cached = oauth.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let fetched = Instant::now();
        let token = self.fetch_token(oauth).await?;
        // As the candidhealth SDK: a token living no longer than the margin
        // is used for one request only.
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = self.inner.settings.token_refresh_margin;
        *cached = Some(CachedToken {
            value: token.access_token.clone(),
            renew_at: fetched + lifetime.saturating_sub(margin),
        });
        Ok(token.access_token)
    }

    /// `POST /api/auth/v2/token`. Its own small loop rather than
    /// [`Self::execute`], which calls back here for every Images request.
    async fn fetch_token(&self, oauth: &OAuth) -> Result<TokenResponse> {
        let settings = &self.inner.settings;
        let url = self.url(&["api", "auth", "v2", "token"]);
        let body = serde_json::json!({
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
        });
        let mut attempt = 0;
        loop {
            let sent = self
                .inner
                .http
                .post(url.clone())
                .timeout(settings.timeout)
                .json(&body)
                .send()
                .await;
            let retries_left = attempt < settings.max_retries;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() && retries_left => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Transport {
                        url: url.to_string(),
                        timeout: e.is_timeout(),
                        source: Box::new(e),
                    })
                }
            };
            let status = response.status();
            if status.is_success() {
                return decode(url, response).await;
            }
            let wait = retry_after(response.headers());
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) && retries_left
            {
                let wait = wait.unwrap_or_else(|| backoff(attempt));
                if wait <= settings.max_retry_wait {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            let body = response.bytes().await.unwrap_or_default();
            return Err(ApiError::parse(status.as_u16(), &body, wait).into());
        }
    }

    async fn forget_token(&self) {
        if let Some(oauth) = &self.inner.oauth {
            *oauth.token.lock().await = None;
        }
    }

    pub(crate) fn transfer_timeout(&self) -> Duration {
        self.inner.settings.transfer_timeout
    }
}

pub(crate) async fn decode<T: DeserializeOwned>(url: Url, response: Response) -> Result<T> {
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| Error::Transport {
        url: url.to_string(),
        timeout: e.is_timeout(),
        source: Box::new(e),
    })?;
    serde_json::from_slice(&body).map_err(|e| Error::Decode {
        url: url.to_string(),
        status,
        message: e.to_string(),
    })
}

/// `retry-after-ms`, else `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text(RETRY_AFTER.as_str())?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(at.timestamp_millis().max(0) as u64);
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// 0.5 s, 1 s, 2 s, … capped at 8 s, less up to a quarter of jitter so that
/// many clients do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(4));
    let base = base.min(Duration::from_secs(8));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    base.mul_f64(1.0 - f64::from(nanos % 250) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_retry_after_in_each_form() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date: now");
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(500));
        assert!(backoff(0) >= Duration::from_millis(375));
        assert!(backoff(10) <= Duration::from_secs(8));
        assert!(backoff(10) >= Duration::from_secs(6));
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_segments() {
        let c = Client::builder("http://h:1/base/").build().unwrap();
        assert_eq!(
            c.url(&["v1", "viewer", "studies", "by-uid", "1.2/3 4"])
                .as_str(),
            "http://h:1/base/v1/viewer/studies/by-uid/1.2%2F3%204"
        );
        let c = Client::builder("http://h:1").build().unwrap();
        assert_eq!(c.url(&["images", "v1"]).as_str(), "http://h:1/images/v1");
        assert!(Client::builder("ftp://h").build().is_err());
    }
}
