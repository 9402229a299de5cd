use thiserror::Error;

/// What went wrong, in terms a caller can act on. Each API maps these kinds to
/// its own status codes and error envelope.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request is malformed or a value breaks a validation rule.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// The named resource does not exist in the caller's organization.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (duplicate, wrong state).
    #[error("{0}")]
    Conflict(String),
    /// An optimistic-concurrency check failed: the object changed since the
    /// caller read it, or a create would duplicate something that must be unique.
    #[error("{message}")]
    VersionConflict {
        message: String,
        /// The stored version, so the caller can re-read and retry.
        latest_version: Option<i64>,
    },
    /// Well-formed, but refers to something that cannot be used (e.g. a revoked user).
    #[error("{0}")]
    Unprocessable(String),
    /// A signed link whose signature is valid but which has expired.
    #[error("{0}")]
    Gone(String),
    /// A signed link or credential that does not verify.
    #[error("{0}")]
    Forbidden(String),
    /// A failure that is not the caller's fault. The message is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::Invalid {
            field: None,
            message: message.into(),
        }
    }
}

/// An error with its causes, `outer: cause: root` (HTTP clients' own
/// messages often hide the reason, such as a refused connection, in a cause).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::with_causes;

    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(with_causes(&e), "request failed: connection refused");
    }
}
