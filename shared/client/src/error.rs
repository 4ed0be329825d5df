//! What a call can fail with, and which failures are worth retrying.

use std::time::Duration;

use crate::model::{ErrorMessage, HttpValidationError};

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorBody {
    /// `{"detail": "..."}`: every error but a validation error.
    Detail(String),
    /// `422 {"detail": [{"loc": [...], "msg": ..., "type": ...}]}`.
    Validation(HttpValidationError),
    /// Anything else (a proxy's HTML page, an empty body).
    Other(String),
}

impl ErrorBody {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        if let Ok(message) = serde_json::from_slice::<ErrorMessage>(bytes) {
            return ErrorBody::Detail(message.detail);
        }
        if let Ok(validation) = serde_json::from_slice::<HttpValidationError>(bytes) {
            return ErrorBody::Validation(validation);
        }
        ErrorBody::Other(String::from_utf8_lossy(bytes).into_owned())
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorBody::Detail(detail) => f.write_str(detail),
            ErrorBody::Validation(v) => {
                let parts: Vec<String> = v
                    .detail
                    .iter()
                    .map(|e| format!("{:?}: {}", e.loc, e.msg))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            ErrorBody::Other(text) => f.write_str(text),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status.
    #[error("{operation}: HTTP {status}: {body}")]
    Status {
        operation: &'static str,
        status: u16,
        body: ErrorBody,
        /// `Retry-After` in seconds, when the answer carried one (429, 503).
        retry_after: Option<Duration>,
    },
    /// No answer: the connection failed, closed early, or timed out.
    #[error("{operation}: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// An answer this client cannot read as the operation's type.
    #[error("{operation}: unexpected answer: {message}")]
    Unexpected {
        operation: &'static str,
        message: String,
    },
    /// The retry policy's deadline passed before an answer that is not retried.
    #[error("{operation}: no answer within the deadline of {deadline:?} (last: {last})")]
    DeadlineExceeded {
        operation: &'static str,
        deadline: Duration,
        last: Box<Error>,
    },
    /// A read-modify-write lost the race to other writers on every attempt.
    #[error("session {session_id}: still changed by others after {attempts} attempts")]
    Contended { session_id: String, attempts: u32 },
    /// The request could not be signed (no credentials, a bad header value).
    #[error("signing: {0}")]
    Signing(String),
}

impl Error {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::DeadlineExceeded { last, .. } => last.status(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A 412: the session changed since the revision sent in `If-Match`.
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }

    /// Worth sending again unchanged: no answer at all, 429 (throttled) or a
    /// 5xx. Never a 4xx: the same request would get the same answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            // A request that could not be built or whose body could not be
            // read is a bug here, not a passing failure.
            Error::Transport { source, .. } => !source.is_builder() && !source.is_decode(),
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A copy of an error answer (the transport's errors cannot be copied).
    pub(crate) fn copy_of_status(&self) -> Option<Error> {
        match self {
            Error::Status {
                operation,
                status,
                body,
                retry_after,
            } => Some(Error::Status {
                operation,
                status: *status,
                body: body.clone(),
                retry_after: *retry_after,
            }),
            _ => None,
        }
    }

    /// The `detail` text of an error answer.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Status {
                body: ErrorBody::Detail(detail),
                ..
            } => Some(detail),
            Error::DeadlineExceeded { last, .. } => last.detail(),
            _ => None,
        }
    }
}
