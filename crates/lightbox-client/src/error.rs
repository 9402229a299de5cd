//! Errors: the API's own error envelope, kept whole, or what went wrong
//! before an answer arrived.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No answer: connection refused, reset, TLS failure or timeout.
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        timeout: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A 2xx answer whose body is not what the API promises.
    #[error("unexpected answer from {url} (status {status}): {message}")]
    Decode {
        url: String,
        status: u16,
        message: String,
    },
    /// The client was built without what this call needs (e.g. no API key).
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The API error, if the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }
}

/// An error answer: its status, its body in the product's envelope, and the
/// server's `Retry-After`, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub envelope: Envelope,
    pub retry_after: Option<Duration>,
}

/// Each product's error body.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// Viewer API: `{"type": "not_found", "message": "…", "field": "…"}`.
    Viewer(ViewerError),
    /// Images API: `{"errorName": "NotFoundError", "content": {"message": "…"}}`.
    Images(ImagesError),
    /// Anything else (e.g. an S3 error for a signed upload), as text.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewerError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesError {
    #[serde(rename = "errorName")]
    pub error_name: String,
    pub content: ImagesErrorContent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesErrorContent {
    pub message: String,
    /// Boxed: a JSON value is large (serde_json keeps object order in this
    /// workspace), and every `Result` of the client carries this error.
    #[serde(default)]
    pub data: Option<Box<serde_json::Value>>,
    /// Set on a `VersionConflictError`: the version stored now.
    #[serde(default)]
    pub latest_version: Option<i64>,
}

impl ApiError {
    pub(crate) fn parse(status: u16, body: &[u8], retry_after: Option<Duration>) -> ApiError {
        let envelope = if let Ok(e) = serde_json::from_slice::<ImagesError>(body) {
            Envelope::Images(e)
        } else if let Ok(e) = serde_json::from_slice::<ViewerError>(body) {
            Envelope::Viewer(e)
        } else {
            Envelope::Other(String::from_utf8_lossy(body).trim().to_owned())
        };
        ApiError {
            status,
            envelope,
            retry_after,
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match &self.envelope {
            Envelope::Viewer(e) => &e.message,
            Envelope::Images(e) => &e.content.message,
            Envelope::Other(text) => text,
        }
    }

    /// The machine-readable kind: Viewer `type` or Images `errorName`.
    pub fn kind(&self) -> Option<&str> {
        match &self.envelope {
            Envelope::Viewer(e) => Some(&e.kind),
            Envelope::Images(e) => Some(&e.error_name),
            Envelope::Other(_) => None,
        }
    }

    /// The request field at fault, when the server names one.
    pub fn field(&self) -> Option<&str> {
        match &self.envelope {
            Envelope::Viewer(e) => e.field.as_deref(),
            Envelope::Images(e) => e
                .content
                .data
                .as_ref()
                .and_then(|d| d.get("field"))
                .and_then(|f| f.as_str()),
            Envelope::Other(_) => None,
        }
    }

    /// For an Images version conflict: the version stored now.
    pub fn latest_version(&self) -> Option<i64> {
        match &self.envelope {
            Envelope::Images(e) => e.content.latest_version,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    pub fn is_conflict(&self) -> bool {
        self.status == 409
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(kind) = self.kind() {
            write!(f, " {kind}")?;
        }
        write!(f, ": {}", self.message())?;
        if let Some(field) = self.field() {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_envelope() {
        let v = ApiError::parse(
            400,
            br#"{"type":"invalid_request","message":"bad uid","field":"studyInstanceUid"}"#,
            None,
        );
        assert_eq!(v.kind(), Some("invalid_request"));
        assert_eq!(v.field(), Some("studyInstanceUid"));
        assert_eq!(
            v.to_string(),
            "400 invalid_request: bad uid (field `studyInstanceUid`)"
        );

        let i = ApiError::parse(
            409,
            br#"{"errorName":"VersionConflictError","content":{"message":"stale","latest_version":4}}"#,
            None,
        );
        assert_eq!(i.kind(), Some("VersionConflictError"));
        assert_eq!(i.latest_version(), Some(4));

        let o = ApiError::parse(502, b"<html>bad gateway</html>\n", None);
        assert_eq!(
            o.envelope,
            Envelope::Other("<html>bad gateway</html>".into())
        );
        assert_eq!(o.kind(), None);
    }
}
