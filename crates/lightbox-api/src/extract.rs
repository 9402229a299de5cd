//! Request extractors whose failures use the product's error envelope instead
//! of axum's plain-text rejections.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A JSON body. Malformed JSON or a wrong shape is a 400 naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(JsonRejection::BytesRejection(e)))?;
        reject_nul_strings(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or any `+json` type, as axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// PostgreSQL cannot store NUL in text, and no field has a use for it: a
/// string holding `\u0000` is a 400 on every backend rather than a 500 on one.
fn reject_nul_strings(bytes: &[u8]) -> Result<(), ApiError> {
    // Cheap pre-check: JSON can only carry NUL as the escape `\u0000`.
    if !bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Ok(());
    }
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) if has_nul(&value) => Err(ApiError::bad_request(
            "invalid body: strings must not contain NUL (\\u0000) characters",
        )),
        _ => Ok(()),
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large()
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// One path parameter, percent-decoded.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The query string as a map. Keys the endpoint does not know are ignored; a
/// key given twice is a 400 naming it, on every endpoint: no parameter takes
/// several values (lists are comma-joined into one, as the Viewer SDK sends
/// them), and answering for the last value would silently drop the others.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))?
            .0;
        let mut map = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            // PostgreSQL cannot compare text with NUL in it; no parameter needs one.
            if key.contains('\0') || value.contains('\0') {
                let key = key.replace('\0', "");
                return Err(lightbox_domain::Error::invalid(
                    key.clone(),
                    format!("query parameter `{key}` must not contain NUL characters"),
                )
                .into());
            }
            if map.contains_key(&key) {
                return Err(lightbox_domain::Error::invalid(
                    key.clone(),
                    format!(
                        "query parameter `{key}` is given more than once; \
                         each parameter takes one value"
                    ),
                )
                .into());
            }
            map.insert(key, value);
        }
        Ok(QueryMap(map))
    }
}

impl QueryMap {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A value that is present and not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

/// Deserializes a field that distinguishes "absent" (`None`, via
/// `#[serde(default)]`) from "null" (`Some(None)`) and a value (`Some(Some(v))`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// A [`nullable`] field that may be left out but not set to null.
pub fn not_null<T>(
    field: &str,
    value: Option<Option<T>>,
) -> Result<Option<T>, lightbox_domain::Error> {
    match value {
        Some(None) => Err(lightbox_domain::Error::invalid(
            field,
            format!("{field} cannot be null"),
        )),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}
