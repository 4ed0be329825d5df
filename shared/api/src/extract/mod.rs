//! Request extractors that turn every malformed input into a FastAPI-style 422
//! (or 413 for an oversized body) instead of axum's plain-text rejections. One
//! concern per module: the tenant, path parameters, JSON bodies, query
//! parameters and session preconditions.

mod json;
mod path;
mod precondition;
mod query;
mod tenant;

pub use json::{JsonBody, OptionalJsonBody, parse_json};
pub use path::{ParamProblem, Path, PathParam, PathParams, RuntimeId};
pub(crate) use precondition::{session_etag, session_precondition};
pub use query::QueryParams;
pub use tenant::{AuthorizedTenant, Tenant};

/// Request bodies above this are refused with 413 (the Lambda payload limit).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
