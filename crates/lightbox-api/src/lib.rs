//! Lightbox's HTTP API: one axum router per product, plus the shared pieces
//! (auth, errors, extractors, request limits).

pub mod audit;
mod audit_api;
pub mod auth;
mod builtin_viewer;
pub mod capability;
pub mod dicomweb;
pub mod error;
pub mod extract;
pub mod images;
mod landing;
pub mod observability;
pub mod ohif;
pub mod openapi;
pub mod partner_access;
pub mod viewer;

use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use lightbox_blob::{BlobStore, UrlSigner};
use lightbox_store::Store;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// Settings the API needs at run time.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The externally visible base URL (e.g. `https://lightbox.example.org`),
    /// used in links the API hands out. Without it, links use the request's Host.
    pub public_url: Option<String>,
    /// How long a reroute (study viewer) link stays valid.
    pub reroute_ttl: Duration,
    /// Largest JSON request body accepted.
    pub max_json_body: usize,
    /// Longest a request may take before it is answered with 408.
    pub request_timeout: Duration,
    /// Requests per second each credential may make on average (0: no limit).
    pub rate_limit_per_second: u32,
    /// Requests a credential may make in one burst.
    pub rate_limit_burst: u32,
    /// Take the client address for the audit trail from `X-Forwarded-For`
    /// (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Longest an image upload or download through Lightbox may take.
    pub upload_timeout: Duration,
    /// How long an image's `signed_url` stays valid.
    pub signed_url_ttl: Duration,
    /// Lifetime of Images API access tokens.
    pub token_lifetime: Duration,
    /// The DICOM archive's limits (STOW-RS and, through the binary, DIMSE).
    pub dicom: DicomConfig,
    /// The prebuilt OHIF viewer to serve at `/ohif/` (checked with
    /// [`ohif::check`]); without it links open the built-in image page.
    pub ohif_dir: Option<std::path::PathBuf>,
    /// The web app's idle timeout: its sign-in cookie reads DICOMweb only
    /// while the session is live by the web app's own rules.
    pub web_idle_timeout: Duration,
}

/// Limits of the DICOM archive.
#[derive(Debug, Clone)]
pub struct DicomConfig {
    /// Largest DICOM instance (data set) accepted, over DIMSE or STOW-RS.
    pub max_instance_bytes: u64,
    /// Largest STOW-RS request body.
    pub max_stow_bytes: u64,
    /// Where instances are spooled when the blob store has no local folder
    /// of its own (S3); local blob stores spool inside their own folder.
    pub spool_dir: std::path::PathBuf,
    /// How old an unindexed file must be before the sweep removes it.
    pub orphan_age: Duration,
    /// How long a study's `study.images_received` waits for more instances.
    pub burst_quiet: Duration,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            max_instance_bytes: 2 * 1024 * 1024 * 1024,
            max_stow_bytes: 8 * 1024 * 1024 * 1024,
            spool_dir: std::env::temp_dir().join("lightbox-spool"),
            orphan_age: Duration::from_secs(3600),
            burst_quiet: Duration::from_secs(10),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            public_url: None,
            reroute_ttl: Duration::from_secs(300),
            max_json_body: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            trust_forwarded_for: false,
            upload_timeout: Duration::from_secs(600),
            signed_url_ttl: Duration::from_secs(3600),
            token_lifetime: Duration::from_secs(5 * 3600),
            dicom: DicomConfig::default(),
            ohif_dir: None,
            web_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

type KeyedLimiter = governor::DefaultKeyedRateLimiter<String>;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub signer: UrlSigner,
    pub blobs: BlobStore,
    pub config: Arc<ApiConfig>,
    pub audit: audit::AuditLog,
    /// The DICOM ingest pipeline, shared by STOW-RS and the DIMSE receiver.
    pub ingest: lightbox_dicom::Ingest,
    /// Series metadata kept whole in the blob store.
    pub series_documents: lightbox_dicom::dicomweb::series_documents::SeriesDocuments,
    /// Partner access calls when a link opens a study without images (set
    /// by the binary when webhooks are configured).
    pub partner: Option<partner_access::PartnerAccess>,
    /// Per-credential token buckets, in this process (each replica limits on its own).
    limiter: Option<Arc<KeyedLimiter>>,
}

/// The settings key under which replicas share the URL-signing key.
pub const SIGNING_KEY_SETTING: &str = "url_signing_key";

impl AppState {
    /// Builds the state, loading (or creating, once for all replicas) the URL-signing key.
    pub async fn new(
        store: Store,
        blobs: BlobStore,
        config: ApiConfig,
    ) -> Result<AppState, lightbox_store::StoreError> {
        let key = store
            .setting_or_insert(
                SIGNING_KEY_SETTING,
                lightbox_domain::credentials::random_secret,
            )
            .await?;
        let limiter = NonZeroU32::new(config.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
            Arc::new(governor::RateLimiter::keyed(
                governor::Quota::per_second(rate).allow_burst(burst),
            ))
        });
        let audit = audit::AuditLog::start(store.clone());
        let ingest = lightbox_dicom::Ingest::new(
            store.clone(),
            blobs.clone(),
            lightbox_dicom::IngestConfig {
                max_instance_bytes: config.dicom.max_instance_bytes,
                spool_dir: blobs
                    .local_spool_dir()
                    .unwrap_or_else(|| config.dicom.spool_dir.clone()),
                orphan_age: config.dicom.orphan_age,
                burst_quiet: config.dicom.burst_quiet,
            },
            audit.sink(),
        )
        .map_err(|e| lightbox_store::StoreError::Config(format!("DICOM spool folder: {e}")))?;
        Ok(AppState {
            audit,
            ingest,
            series_documents: lightbox_dicom::dicomweb::series_documents::SeriesDocuments::new(
                blobs.clone(),
            ),
            store,
            signer: UrlSigner::new(key.into_bytes()),
            blobs,
            config: Arc::new(config),
            partner: None,
            limiter,
        })
    }

    /// Takes one request from `credential`'s budget, or says when to come back.
    pub fn rate_limit(&self, credential: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Keys are credentials, so the map stays as small as the set of active credentials.
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&credential.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                ApiError::rate_limited(wait.as_secs() + 1)
            })
    }
}

/// The whole HTTP surface of the server.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The API plus `extra` routes (the web app) inside the same shared layers:
/// request id, trace, metrics, panic handler. `extra` comes with its state
/// applied and must not set a fallback of its own.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let config = state.config.clone();
    // Install the metrics recorder before the first request is counted.
    observability::prometheus();
    let x_request_id = HeaderName::from_static("x-request-id");
    // Body limits and timeouts are per product: image uploads stream past
    // the JSON limit under their own cap, and Images renders its own envelope.
    let viewer = Router::new()
        .merge(viewer::router())
        .merge(landing::router())
        .merge(builtin_viewer::routes())
        .merge(audit_api::router())
        .layer(RequestBodyLimitLayer::new(config.max_json_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::middleware::map_response(error::envelope_bare_errors));
    // Every route that touches an organization's data is audited.
    // STOW-RS bodies stream under their own cap (enforced while parsing).
    let dicomweb = dicomweb::router()
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.upload_timeout,
        ));
    let audited = viewer
        .merge(images::router(&config))
        .merge(dicomweb)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record_requests,
        ));
    // The viewer's files are the same for everyone: not audited, no timeout.
    let ohif = match &config.ohif_dir {
        Some(dir) => ohif::router(dir.clone()),
        None => Router::new(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .merge(observability::router())
        .merge(openapi::router())
        .merge(ohif)
        .merge(audited)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .merge(extra)
        .layer(CatchPanicLayer::custom(|_| internal_error()))
        .layer(axum::middleware::from_fn(observability::track_requests))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: query strings and signed-link tokens stay out of logs.
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), route, request_id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// Liveness: the process serves requests (see `/readyz` for its dependencies).
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

fn plain_json_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "type": kind, "message": message })),
    )
        .into_response()
}

/// Unmatched paths and methods answer in the envelope of the product whose
/// paths they are under, so SDK clients can parse every error.
fn routing_error(
    uri: &axum::http::Uri,
    status: StatusCode,
    kind: &'static str,
    message: &str,
) -> Response {
    if images::owns_path(uri.path()) {
        return images::render(&ApiError::new(status, kind, message));
    }
    plain_json_error(status, kind, message)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    routing_error(&uri, StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    routing_error(
        &uri,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

fn internal_error() -> Response {
    plain_json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal server error",
    )
}

/// The base URL for links handed to the caller of this request.
pub(crate) fn public_base(config: &ApiConfig, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}
