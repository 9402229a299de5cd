//! `Server-Timing: app;dur=<milliseconds>` on every response: the time from the
//! request's arrival in the router to its response being ready (a JSON body is
//! serialised by then; a streamed body is not). Benchmarks read it to separate
//! server time from client and network time.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={millis:.3}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}
