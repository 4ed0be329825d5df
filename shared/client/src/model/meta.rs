//! Answers outside any aggregate: errors (`ErrorMessage`, `HTTPValidationError`) and health.

use serde::{Deserialize, Serialize};

/// `{"detail": "Migration plan 3fa85f64-… not found"}`: every error except a
/// validation error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub detail: String,
}

/// A request validation error, in FastAPI's shape with pydantic v2 error types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationError>,
}

/// `GET /health`: the process answers and the store is reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The store's error when it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `ok`, or `unavailable` (with 503) when the store did not answer.
    pub status: String,
}

/// One part of a validation error's location: a name or an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocPart {
    Name(String),
    Index(u64),
}

/// One entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Where: `["body", "steps", 3, "id"]`, `["query", "limit"]`, `["header", "X-Tenant-ID"]`.
    pub loc: Vec<LocPart>,
    pub msg: String,
    /// A pydantic v2 error type (`missing`, `uuid_parsing`, `extra_forbidden`,
    /// `json_invalid`, `int_parsing`, `model_type`, …) or, for checks of this
    /// product, `value_error…` (`value_error.unknown_step`, `value_error.cel`, …).
    pub r#type: String,
}
