//! Operations endpoints and request metrics: Prometheus `/metrics`, `/readyz`
//! (database and blob store reachable), and the middleware that counts and
//! times every request by route template.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

const REQUESTS: &str = "lightbox_http_requests_total";
const DURATION: &str = "lightbox_http_request_duration_seconds";
const POOL_CONNECTIONS: &str = "lightbox_db_pool_connections";
const POOL_IDLE: &str = "lightbox_db_pool_idle_connections";
const BLOB_UPLOADED: &str = "lightbox_blob_bytes_uploaded_total";
const BLOB_DOWNLOADED: &str = "lightbox_blob_bytes_downloaded_total";
const WEBHOOK_PENDING: &str = "lightbox_webhook_pending_deliveries";

/// How long each readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use. A process
/// that installed another recorder first still gets a handle (that renders
/// nothing), so building a router never fails.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DURATION.to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ],
                )
                .expect("static bucket list is not empty")
        };
        builder()
            .install_recorder()
            .unwrap_or_else(|_| builder().build_recorder().handle())
    })
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Counts and times every request, labelled with the route template (never
/// the raw path, which holds ids and tokens) so the series stay few. The same
/// time goes back to the caller as `Server-Timing: app;dur=<milliseconds>`:
/// from the request's arrival in the router to its response being ready (a
/// JSON body is serialised by then; a streamed body is not). Benchmarks read
/// it to separate server time from client and network time.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(DURATION, "method" => method, "route" => route).record(took.as_secs_f64());
    let millis = took.as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={millis:.3}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Bytes of image files stored, on either backend (S3: counted when the
/// direct upload is verified).
pub fn blob_uploaded(bytes: i64) {
    metrics::counter!(BLOB_UPLOADED).increment(u64::try_from(bytes).unwrap_or(0));
}

/// Bytes of image files served through Lightbox (local backend; S3 reads go
/// straight to the bucket).
pub fn blob_downloaded(bytes: u64) {
    metrics::counter!(BLOB_DOWNLOADED).increment(bytes);
}

/// Prometheus text exposition of the process's metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    for pool in state.store.pool_stats() {
        metrics::gauge!(POOL_CONNECTIONS, "pool" => pool.name).set(f64::from(pool.size));
        metrics::gauge!(POOL_IDLE, "pool" => pool.name).set(pool.idle as f64);
    }
    // Webhook deliveries waiting (due or retrying), across replicas.
    match state.store.pending_deliveries().await {
        Ok(n) => metrics::gauge!(WEBHOOK_PENDING).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "could not count pending webhook deliveries"),
    }
    // Blob bytes start at 0 rather than appearing on first transfer.
    metrics::counter!(BLOB_UPLOADED).increment(0);
    metrics::counter!(BLOB_DOWNLOADED).increment(0);
    let handle = prometheus();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// What `/readyz` found.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"database": "ok", "blobStore": "ok"}}))]
pub struct Readiness {
    /// `ready`, or `unavailable` when any check failed.
    #[schema(pattern = "^(ready|unavailable)$")]
    status: &'static str,
    checks: ReadinessChecks,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessChecks {
    /// `ok` or `failed` (the reason is logged, not sent).
    #[schema(pattern = "^(ok|failed)$")]
    database: &'static str,
    #[schema(pattern = "^(ok|failed)$")]
    blob_store: &'static str,
}

/// Readiness: the database answers a query and the blob store is reachable
/// (writable, for local files). 503 while either fails; `/healthz` stays 200
/// as long as the process serves requests.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "The database or the blob store is unavailable", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            false
        }
    };
    let blob_store = match tokio::time::timeout(CHECK_TIMEOUT, state.blobs.check()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: blob store check failed");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: blob store check timed out");
            false
        }
    };
    let word = |ok: bool| if ok { "ok" } else { "failed" };
    let ready = database && blob_store;
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        checks: ReadinessChecks {
            database: word(database),
            blob_store: word(blob_store),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}
