//! API errors in the FastAPI shape, mapped to status codes in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use planning::validate::LocPart;
use serde::Serialize;
use store::StoreError;

use crate::marking::MarkingError;
use crate::marking::queue::QueueError;
use crate::services::error::{Input, ServiceError};

/// One entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct ErrorDetail {
    /// Where: `["body", "steps", 3, "id"]`, `["query", "limit"]`, `["header", "X-Tenant-ID"]`.
    #[schema(example = json!(["body", "new_scenario", "steps", 0, "id"]))]
    pub loc: Vec<LocPart>,
    pub msg: String,
    /// A pydantic v2 error type (`missing`, `uuid_parsing`, `extra_forbidden`,
    /// `json_invalid`, `int_parsing`, `model_type`, …) or, for checks of this
    /// product, `value_error…` (`value_error.unknown_step`, `value_error.cel`, …).
    #[serde(rename = "type")]
    #[schema(example = "uuid_parsing")]
    pub kind: String,
}

impl ErrorDetail {
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: impl Into<String>) -> Self {
        ErrorDetail {
            loc: loc.iter().map(|p| LocPart::Key((*p).to_string())).collect(),
            msg: msg.into(),
            kind: kind.into(),
        }
    }

    /// An entry at a location with integer indices (`["body", "steps", 3]`).
    pub fn located(loc: Vec<LocPart>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        ErrorDetail {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<ErrorDetail>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// A stale `If-Match` / `If-None-Match` (HTTP 412).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The backend throttled us; the client may retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or an outage: logged, never shown.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl ApiError {
    pub fn validation(loc: &[&str], msg: impl Into<String>, kind: impl Into<String>) -> Self {
        ApiError::Validation(vec![ErrorDetail::new(loc, msg, kind)])
    }

    /// `"{what} {id} not found"`, as the original words it ("Migration plan
    /// 3fa8… not found"): operators grep logs for the id.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} {id} not found"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::PlanNotApplying(id) => {
                ApiError::Conflict(format!("plan {id} is not applying migrations"))
            }
            StoreError::Throttled(m) => ApiError::Unavailable(m),
            StoreError::InvalidToken => ApiError::validation(
                &["query", "next_token"],
                "invalid pagination token",
                "value_error",
            ),
            StoreError::Unexpected(m) => ApiError::Unexpected(m),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { input, issues } => {
                let part = match input {
                    Input::Document => "body",
                    Input::Listing => "query",
                };
                ApiError::Validation(
                    issues
                        .into_iter()
                        .map(|issue| {
                            let mut loc = vec![LocPart::from(part)];
                            loc.extend(issue.field);
                            ErrorDetail::located(loc, issue.msg, issue.kind)
                        })
                        .collect(),
                )
            }
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::PreconditionFailed(m) => ApiError::PreconditionFailed(m),
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::Store(s) => s.into(),
            ServiceError::Queue(q) => q.into(),
            ServiceError::Marking(MarkingError::Store(s)) => s.into(),
            ServiceError::Marking(MarkingError::Queue(q)) => q.into(),
            ServiceError::Marking(other) => ApiError::Unexpected(with_sources(&other)),
            ServiceError::Unexpected(m) => ApiError::Unexpected(m),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Throttled(_) => ApiError::Unavailable(with_sources(&e)),
            other => ApiError::Unexpected(with_sources(&other)),
        }
    }
}

/// An error with its chain of sources, for the log line (the SDK's error is
/// the source of a queue error, and says what happened).
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Serialize)]
struct DetailList<'a> {
    detail: &'a [ErrorDetail],
}

#[derive(Serialize)]
struct DetailText<'a> {
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Validation(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::to_vec(&DetailList { detail: details }),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, text(m)),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, text(m)),
            ApiError::PreconditionFailed(m) => (StatusCode::PRECONDITION_FAILED, text(m)),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                text("Request body too large (limit 6 MB)"),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, text(m)),
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "backend throttled");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    text("Service temporarily busy, retry shortly"),
                )
            }
            ApiError::Unexpected(m) => {
                tracing::error!(error = %m, "unexpected failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    text("Internal server error"),
                )
            }
        };
        let body = body.unwrap_or_else(|_| br#"{"detail":"Internal server error"}"#.to_vec());
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn text(m: &str) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&DetailText { detail: m })
}

pub type ApiResult<T> = Result<T, ApiError>;
