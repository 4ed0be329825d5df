//! API errors in the FastAPI shape, mapped to status codes in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use planning::validate::{LocPart, ValidationIssue};
use serde::Serialize;
use store::{ActivationError, SessionWriteError, StoreError};

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

    /// A planning validation issue, located under `prefix` (e.g. body.new_scenario).
    pub fn from_issue(prefix: &[&str], issue: ValidationIssue) -> Self {
        let mut loc: Vec<LocPart> = prefix
            .iter()
            .map(|p| LocPart::Key((*p).to_string()))
            .collect();
        loc.extend(issue.loc);
        ErrorDetail {
            loc,
            msg: issue.msg,
            kind: issue.kind,
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

impl From<SessionWriteError> for ApiError {
    fn from(e: SessionWriteError) -> Self {
        match e {
            SessionWriteError::PreconditionFailed { current: Some(r) } => {
                ApiError::PreconditionFailed(format!("Session is at revision {r}"))
            }
            SessionWriteError::PreconditionFailed { current: None } => {
                ApiError::PreconditionFailed("Session does not exist".into())
            }
            SessionWriteError::VersionRegression { current } => ApiError::Conflict(format!(
                "Session is at version {current} of this scenario; a session never moves back to an older version"
            )),
            SessionWriteError::Store(s) => s.into(),
        }
    }
}

impl From<ActivationError> for ApiError {
    fn from(e: ActivationError) -> Self {
        match e {
            ActivationError::PlanChanged => {
                ApiError::Conflict("Migration plan changed concurrently; reload it".into())
            }
            ActivationError::ScenarioMoved => ApiError::Conflict(
                "Scenario is no longer at the plan's from_version; the plan is superseded".into(),
            ),
            ActivationError::Store(s) => s.into(),
        }
    }
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
