//! How a use case fails, in its own terms: which input is invalid and where
//! inside it, what is missing or in conflict. The router (`crate::error`) turns
//! these into HTTP answers; nothing here knows about status codes or where in
//! a request an input travelled.

use planning::lifecycle::LifecycleError;
use planning::validate::{LocPart, ValidationIssue};
use store::{ActivationError, SessionWriteError, StoreError};

use crate::marking::MarkingError;
use crate::marking::queue::QueueError;

/// Which input of a use case a problem is in. The router names it in HTTP
/// terms (the request document is the body, listing options the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The document the caller submitted (a scenario, a session, policies).
    Document,
    /// Options of a listing: filters, page size, page token.
    Listing,
}

/// One problem with an input: the field path inside it, a message and a
/// pydantic-style kind (`value_error.unknown_step`, `greater_than_equal`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub field: Vec<LocPart>,
    pub msg: String,
    pub kind: String,
}

impl Issue {
    pub fn new(field: &[&str], msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Issue {
            field: field
                .iter()
                .map(|p| LocPart::Key((*p).to_string()))
                .collect(),
            msg: msg.into(),
            kind: kind.into(),
        }
    }

    /// A planning validation issue, located under `prefix` inside the document.
    pub fn from_validation(prefix: &[&str], issue: ValidationIssue) -> Self {
        let mut field: Vec<LocPart> = prefix
            .iter()
            .map(|p| LocPart::Key((*p).to_string()))
            .collect();
        field.extend(issue.loc);
        Issue {
            field,
            msg: issue.msg,
            kind: issue.kind,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid {input:?}: {} problem(s)", issues.len())]
    Invalid { input: Input, issues: Vec<Issue> },
    /// `"{what} {id} not found"` (see [`ServiceError::not_found`]).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A stale session precondition (`If-Match` / `If-None-Match`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// Too busy right now (throttled, shutting down); the caller may retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Marking(#[from] MarkingError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A broken invariant (a bug or lost data): logged, never shown.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// `"{what} {id} not found"`, as the original words it ("Migration plan
    /// 3fa8… not found"): operators grep logs for the id.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ServiceError::NotFound(format!("{what} {id} not found"))
    }

    /// One problem in the submitted document.
    pub fn invalid_document(field: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        ServiceError::Invalid {
            input: Input::Document,
            issues: vec![Issue::new(field, msg, kind)],
        }
    }

    /// One problem in a listing option.
    pub fn invalid_listing(field: &str, msg: impl Into<String>, kind: &str) -> Self {
        ServiceError::Invalid {
            input: Input::Listing,
            issues: vec![Issue::new(&[field], msg, kind)],
        }
    }
}

/// A command the plan's status does not allow (`planning::lifecycle`): 409 with
/// the lifecycle's words ("Plan is approved; only pending plans can be rejected").
impl From<LifecycleError> for ServiceError {
    fn from(e: LifecycleError) -> Self {
        ServiceError::Conflict(e.to_string())
    }
}

impl From<SessionWriteError> for ServiceError {
    fn from(e: SessionWriteError) -> Self {
        match e {
            SessionWriteError::PreconditionFailed { current: Some(r) } => {
                ServiceError::PreconditionFailed(format!("Session is at revision {r}"))
            }
            SessionWriteError::PreconditionFailed { current: None } => {
                ServiceError::PreconditionFailed("Session does not exist".into())
            }
            SessionWriteError::VersionRegression { current } => ServiceError::Conflict(format!(
                "Session is at version {current} of this scenario; a session never moves back to an older version"
            )),
            SessionWriteError::Store(s) => s.into(),
        }
    }
}

impl From<ActivationError> for ServiceError {
    fn from(e: ActivationError) -> Self {
        match e {
            ActivationError::PlanChanged => {
                ServiceError::Conflict("Migration plan changed concurrently; reload it".into())
            }
            ActivationError::ScenarioMoved => ServiceError::Conflict(
                "Scenario is no longer at the plan's from_version; the plan is superseded".into(),
            ),
            ActivationError::Store(s) => s.into(),
        }
    }
}
