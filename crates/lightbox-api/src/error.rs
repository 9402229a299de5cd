//! API errors. Handlers and extractors fail with an [`ApiError`]. Its response
//! is the Viewer envelope, `{"type": "...", "message": "...", "field": "..."}`,
//! and carries the `ApiError` itself as a response extension, so a product with
//! another envelope re-renders it in one layer (see [`rerender`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lightbox_domain::Error;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable kind, e.g. `not_found`.
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// Seconds to wait before retrying (sent as `Retry-After`), for 429s.
    pub retry_after_secs: Option<u64>,
    /// For a version conflict: the stored version (the Images envelope sends it).
    pub latest_version: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            latest_version: None,
            retry_after_secs: None,
        }
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests for this credential; retry in {retry_after_secs} s"),
            )
        }
    }

    pub fn payload_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A permanent conflict: retrying the same request cannot succeed.
    pub fn is_permanent_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::VersionConflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
            Error::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Error::Gone(_) => (StatusCode::GONE, "expired"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Internal(detail) => {
                // The detail may name tables or values: log it, never send it.
                tracing::error!(error = %detail, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                );
            }
        };
        let field = match &e {
            Error::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let latest_version = match &e {
            Error::VersionConflict { latest_version, .. } => *latest_version,
            _ => None,
        };
        ApiError {
            status,
            kind,
            message: e.to_string(),
            field,
            latest_version,
            retry_after_secs: None,
        }
    }
}

impl From<lightbox_store::StoreError> for ApiError {
    fn from(e: lightbox_store::StoreError) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "type": self.kind, "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = serde_json::Value::String(field.clone());
        }
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        // The avara SDK retries every 409 twice unless told not to.
        if self.is_permanent_conflict() {
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Turns an error response that no handler rendered (a layer's 408 or 413,
/// say) into an [`ApiError`] response, so it too gets the product's envelope.
pub async fn envelope_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.extensions().get::<ApiError>().is_some() {
        return response;
    }
    // Layers answer with no body or plain text; a JSON error or an HTML page
    // (the signed-link landings) was rendered on purpose and stays as it is.
    let is_bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !is_bare {
        return response;
    }
    let reason = || status.canonical_reason().unwrap_or("error").to_lowercase();
    let error = match status {
        StatusCode::REQUEST_TIMEOUT => {
            ApiError::new(status, "request_timeout", "the request took too long")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "method_not_allowed", reason()),
        s if s.is_server_error() => ApiError::new(status, "internal", reason()),
        _ => ApiError::new(status, "http_error", reason()),
    };
    with_headers_of(&response, error.into_response())
}

/// Replaces the body of every error response with `render(error)`, keeping
/// its headers (`Retry-After`, `x-should-retry`, …); a product whose envelope
/// differs from the default adds this as a layer on its router.
pub async fn rerender(render: fn(&ApiError) -> Response, mut response: Response) -> Response {
    match response.extensions_mut().remove::<ApiError>() {
        Some(error) => with_headers_of(&response, render(&error)),
        None => response,
    }
}

/// `rendered`, a new body for `original`, keeping `original`'s headers
/// (`Retry-After`, `x-should-retry`, request id, …) but its own body's type and length.
fn with_headers_of(original: &Response, mut rendered: Response) -> Response {
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}
