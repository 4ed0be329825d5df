//! Session write preconditions (`If-Match`, `If-None-Match: *`) and the `ETag`
//! of a session.

use crate::error::ApiError;

/// The client's precondition on a session write, from `If-Match` (a revision as
/// returned in `ETag`, quoted or not, weak or strong, or `*`) and
/// `If-None-Match: *` (create only). Anything else is a 422 naming the header.
pub(crate) fn session_precondition(
    headers: &axum::http::HeaderMap,
) -> Result<store::SessionPrecondition, ApiError> {
    use store::SessionPrecondition;
    let if_match = headers.get(axum::http::header::IF_MATCH);
    let if_none_match = headers.get(axum::http::header::IF_NONE_MATCH);
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            &["header", "If-None-Match"],
            "send either If-Match or If-None-Match, not both",
            "value_error",
        )),
        (Some(value), None) => {
            let loc = ["header", "If-Match"];
            let bad = || {
                ApiError::validation(
                    &loc,
                    "expected a session revision (the ETag) or *",
                    "value_error",
                )
            };
            let text = value.to_str().map_err(|_| bad())?.trim();
            if text == "*" {
                return Ok(SessionPrecondition::Exists);
            }
            let text = text.strip_prefix("W/").unwrap_or(text);
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text);
            text.parse::<u64>()
                .map(SessionPrecondition::Revision)
                .map_err(|_| bad())
        }
        (None, Some(value)) => match value.to_str().map(str::trim) {
            Ok("*") => Ok(SessionPrecondition::Absent),
            _ => Err(ApiError::validation(
                &["header", "If-None-Match"],
                "only If-None-Match: * (create only) is supported",
                "value_error",
            )),
        },
        (None, None) => Ok(SessionPrecondition::None),
    }
}

/// The `ETag` of a session at `revision`: the revision as a strong entity tag.
pub(crate) fn session_etag(revision: u64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::ETAG, format!("\"{revision}\""))]
}
