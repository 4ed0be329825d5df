//! Query parameters with located 422s.

use super::json::{error_kind, without_input};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorDetail};

/// Query parameters with located 422s. Unknown keys are ignored, as FastAPI
/// does: the query types do not deny unknown fields.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|error| {
                let field = error.path().to_string();
                let loc: Vec<&str> = if field == "." || field.is_empty() {
                    vec!["query"]
                } else {
                    vec!["query", field.as_str()]
                };
                let message = error.inner().to_string();
                ApiError::Validation(vec![ErrorDetail::new(
                    &loc,
                    without_input(&message),
                    error_kind(&message),
                )])
            })
    }
}
