//! Request extractors that turn every malformed input into a FastAPI-style 422
//! (or 413 for an oversized body) instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, ErrorDetail};

/// Request bodies above this are refused with 413 (the Lambda payload limit).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The caller's tenant, from the required `X-Tenant-ID` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant(pub Uuid);

/// The tenant an authorizer vouched for (e.g. a JWT claim), put into the request
/// extensions by the Lambda adapter. When present, `X-Tenant-ID` must match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedTenant(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let loc = ["header", "X-Tenant-ID"];
        let raw = parts
            .headers
            .get("x-tenant-id")
            .ok_or_else(|| ApiError::validation(&loc, "field required", "value_error.missing"))?;
        let text = raw.to_str().map_err(|_| {
            ApiError::validation(&loc, "value is not a valid uuid", "type_error.uuid")
        })?;
        // The canonical hyphenated form only: one tenant, one spelling (in logs,
        // in authorizer claims, in keys).
        let text = text.trim();
        let tenant = (text.len() == 36)
            .then(|| Uuid::parse_str(text).ok())
            .flatten()
            .ok_or_else(|| {
                ApiError::validation(&loc, "value is not a valid uuid", "type_error.uuid")
            })?;
        if let Some(AuthorizedTenant(claimed)) = parts.extensions.get::<AuthorizedTenant>() {
            let matches = Uuid::parse_str(claimed).is_ok_and(|c| c == tenant);
            if !matches {
                return Err(ApiError::Forbidden(
                    "X-Tenant-ID does not match the authenticated tenant".into(),
                ));
            }
        }
        Ok(Tenant(tenant))
    }
}

/// Named path parameters, parsed on demand with 422s that name the parameter.
pub struct PathParams(RawPathParams);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        RawPathParams::from_request_parts(parts, state)
            .await
            .map(PathParams)
            .map_err(|_| ApiError::validation(&["path"], "invalid path parameters", "value_error"))
    }
}

impl PathParams {
    fn raw(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| {
                ApiError::validation(&["path", name], "field required", "value_error.missing")
            })
    }

    /// A UUID in its canonical hyphenated form (36 characters, any case); the
    /// braced, URN and simple forms that `Uuid::parse_str` also takes are refused,
    /// so one object has one URL.
    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let raw = self.raw(name)?;
        let canonical = raw.len() == 36;
        canonical
            .then(|| Uuid::parse_str(raw).ok())
            .flatten()
            .ok_or_else(|| {
                ApiError::validation(
                    &["path", name],
                    "value is not a valid uuid",
                    "type_error.uuid",
                )
            })
    }

    pub fn int(&self, name: &str) -> Result<i64, ApiError> {
        self.raw(name)?.parse().map_err(|_| {
            ApiError::validation(
                &["path", name],
                "value is not a valid integer",
                "type_error.integer",
            )
        })
    }

    /// An identifier chosen by the runtime (session ids need not be UUIDs): 1 to
    /// 256 characters from `A–Z a–z 0–9 . _ - : @ + = ~ |` — enough for channel
    /// prefixes, phone numbers and e-mail addresses, nothing that needs escaping
    /// in a URL, a log line or a storage key.
    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        let value = self.raw(name)?;
        if value.is_empty() || value.len() > 256 {
            return Err(ApiError::validation(
                &["path", name],
                "must be 1 to 256 characters",
                "value_error.any_str.length",
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@+=~|".contains(c);
        if !value.chars().all(allowed) {
            return Err(ApiError::validation(
                &["path", name],
                "may contain only letters, digits and . _ - : @ + = ~ |",
                "value_error.str.regex",
            ));
        }
        Ok(value.to_string())
    }
}

/// A JSON body with unknown fields rejected, located errors and a 6 MB limit.
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body is `None` (for optional request bodies).
pub struct OptionalJsonBody<T>(pub Option<T>);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::validation(&["body"], "could not read the request body", "value_error")
        }
    })
}

/// Parse a JSON body into `T`: located errors, trailing garbage refused, and an
/// object required wherever `T` has a struct — serde also accepts a struct in
/// its sequence form (`["mallory"]` for `{"approved_by": "mallory"}`), which no
/// client of this API means.
pub fn parse_json<T: DeserializeOwned + serde::Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: T = parse_json_loosely(bytes)?;
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(value);
    };
    let canonical = serde_json::to_value(&value)
        .map_err(|e| ApiError::Unexpected(format!("re-serialising a request: {e}")))?;
    let mut loc = vec!["body".to_string()];
    if array_where_object_belongs(&input, &canonical, &mut loc) {
        let loc_refs: Vec<&str> = loc.iter().map(String::as_str).collect();
        return Err(ApiError::Validation(vec![ErrorDetail::new(
            &loc_refs,
            "Input should be a valid dictionary or object to extract fields from",
            "model_type",
        )]));
    }
    Ok(value)
}

/// Whether `input` has an array where the parsed value has an object (a struct
/// given in sequence form); `loc` is left at the first such place.
fn array_where_object_belongs(
    input: &serde_json::Value,
    canonical: &serde_json::Value,
    loc: &mut Vec<String>,
) -> bool {
    use serde_json::Value;
    match (input, canonical) {
        (Value::Array(_), Value::Object(_)) => true,
        (Value::Object(given), Value::Object(parsed)) => given.iter().any(|(key, v)| {
            parsed.get(key).is_some_and(|w| {
                loc.push(key.clone());
                let found = array_where_object_belongs(v, w, loc);
                if !found {
                    loc.pop();
                }
                found
            })
        }),
        (Value::Array(given), Value::Array(parsed)) => {
            given.iter().zip(parsed).enumerate().any(|(i, (v, w))| {
                loc.push(i.to_string());
                let found = array_where_object_belongs(v, w, loc);
                if !found {
                    loc.pop();
                }
                found
            })
        }
        _ => false,
    }
}

fn parse_json_loosely<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let mut loc = vec!["body".to_string()];
        for segment in error.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => loc.push(index.to_string()),
                Segment::Map { key } | Segment::Enum { variant: key } => loc.push(key.clone()),
                Segment::Unknown => {}
            }
        }
        json_error(&loc, error.inner())
    })?;
    // Trailing garbage after the document is malformed JSON too.
    deserializer
        .end()
        .map_err(|e| json_error(&["body".to_string()], &e))?;
    Ok(value)
}

fn json_error(loc: &[String], inner: &serde_json::Error) -> ApiError {
    let message = inner.to_string();
    let kind = if inner.is_syntax() || inner.is_eof() {
        "value_error.jsondecode"
    } else if message.starts_with("unknown field") {
        "value_error.extra"
    } else if message.starts_with("missing field") {
        "value_error.missing"
    } else {
        "type_error"
    };
    let loc_refs: Vec<&str> = loc.iter().map(String::as_str).collect();
    ApiError::Validation(vec![ErrorDetail::new(
        &loc_refs,
        without_input(&message),
        kind,
    )])
}

/// serde quotes what was sent (`invalid type: string "…"`, `invalid value:
/// integer `7``, `unknown variant `…``): keep what was expected and where, never
/// the value — it may be a customer's data.
fn without_input(message: &str) -> String {
    let (text, position) = message
        .rfind(" at line ")
        .map_or((message, ""), |i| message.split_at(i));
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        let Some(rest) = text.strip_prefix(prefix) else {
            continue;
        };
        let expected = rest
            .rsplit_once(", expected ")
            .map_or("another value", |(_, e)| e);
        let head = match prefix {
            "unknown variant " => "unknown variant".to_string(),
            _ => format!(
                "{prefix}{}",
                rest.split(['"', '`', ',']).next().unwrap_or("").trim()
            ),
        };
        return format!("{head}, expected {expected}{position}");
    }
    message.to_string()
}

impl<S: Send + Sync, T: DeserializeOwned + serde::Serialize> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::validation(
                &["body"],
                "field required",
                "value_error.missing",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + serde::Serialize> FromRequest<S>
    for OptionalJsonBody<T>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// Query parameters with unknown keys rejected and located 422s.
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
                ApiError::Validation(vec![ErrorDetail::new(
                    &loc,
                    error.inner().to_string(),
                    "type_error",
                )])
            })
    }
}

/// The client's precondition on a session write, from `If-Match` (a revision as
/// returned in `ETag`, quoted or not, weak or strong, or `*`) and
/// `If-None-Match: *` (create only). Anything else is a 422 naming the header.
pub fn session_precondition(
    headers: &axum::http::HeaderMap,
) -> Result<store::SessionPrecondition, ApiError> {
    use store::SessionPrecondition;
    let if_match = headers.get(axum::http::header::IF_MATCH);
    let if_none_match = headers.get(axum::http::header::IF_NONE_MATCH);
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            &["header", "If-None-Match"],
            "send either If-Match or If-None-Match, not both",
            "value_error.conflict",
        )),
        (Some(value), None) => {
            let loc = ["header", "If-Match"];
            let bad = || {
                ApiError::validation(
                    &loc,
                    "expected a session revision (the ETag) or *",
                    "value_error.etag",
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
                "value_error.etag",
            )),
        },
        (None, None) => Ok(SessionPrecondition::None),
    }
}

/// The `ETag` of a session at `revision`: the revision as a strong entity tag.
pub fn session_etag(revision: u64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::ETAG, format!("\"{revision}\""))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn tenant_of(Tenant(t): Tenant) -> String {
        t.to_string()
    }

    async fn status_for(header: Option<&str>, authorized: Option<&str>) -> (u16, String) {
        let app = Router::new().route("/", get(tenant_of));
        let mut request = HttpRequest::builder().uri("/");
        if let Some(h) = header {
            request = request.header("X-Tenant-ID", h);
        }
        let mut request = request.body(Body::empty()).unwrap();
        if let Some(claim) = authorized {
            request
                .extensions_mut()
                .insert(AuthorizedTenant(claim.to_string()));
        }
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";

    #[tokio::test]
    async fn tenant_header_is_required_and_must_be_a_uuid() {
        let (status, body) = status_for(None, None).await;
        assert_eq!(status, 422);
        assert!(body.contains("X-Tenant-ID"), "{body}");
        assert_eq!(status_for(Some("acme"), None).await.0, 422);
        assert_eq!(
            status_for(Some(TENANT), None).await,
            (200, TENANT.to_string())
        );
    }

    #[tokio::test]
    async fn an_authorized_tenant_claim_must_match_the_header() {
        assert_eq!(status_for(Some(TENANT), Some(TENANT)).await.0, 200);
        let other = "11111111-1111-4111-8111-111111111111";
        let (status, body) = status_for(Some(TENANT), Some(other)).await;
        assert_eq!(status, 403);
        assert!(body.contains("does not match"), "{body}");
        // A claim that is not even a UUID never matches.
        assert_eq!(status_for(Some(TENANT), Some("admin")).await.0, 403);
    }

    #[test]
    fn structs_must_be_objects_not_sequences() {
        #[derive(Debug, serde::Deserialize, serde::Serialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Approve {
            #[serde(default)]
            approved_by: Option<String>,
        }
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            items: Vec<Item>,
            #[serde(default)]
            free: serde_json::Value,
        }
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        struct Item {
            n: i64,
        }
        for body in [&br#"["mallory"]"#[..], b"[]"] {
            let Err(ApiError::Validation(details)) = parse_json::<Approve>(body) else {
                panic!("a sequence was taken for an object");
            };
            assert_eq!(details[0].kind, "model_type");
            assert_eq!(
                serde_json::to_value(&details[0].loc).unwrap(),
                serde_json::json!(["body"])
            );
        }
        let Err(ApiError::Validation(details)) =
            parse_json::<Outer>(br#"{"items": [{"n": 1}, [2]]}"#)
        else {
            panic!("a nested sequence was taken for an object");
        };
        assert_eq!(
            serde_json::to_value(&details[0].loc).unwrap(),
            serde_json::json!(["body", "items", "1"])
        );
        // Arrays where arrays belong, and free-form JSON, are fine.
        let ok = parse_json::<Outer>(br#"{"items": [{"n": 1}], "free": [[1], {"a": []}]}"#);
        assert!(ok.is_ok());
        assert_eq!(
            parse_json::<Approve>(br#"{"approved_by": "lead"}"#)
                .unwrap()
                .approved_by
                .as_deref(),
            Some("lead")
        );
    }

    #[test]
    fn json_errors_are_located() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            items: Vec<Item>,
        }
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Item {
            n: i64,
        }
        let Err(ApiError::Validation(details)) =
            parse_json::<Body>(br#"{"items": [{"n": 1}, {"n": "x"}]}"#)
        else {
            panic!("expected a validation error");
        };
        let loc = serde_json::to_value(&details[0].loc).unwrap();
        assert_eq!(loc, serde_json::json!(["body", "items", "1", "n"]));
        assert!(matches!(
            parse_json::<Body>(b"{} trailing"),
            Err(ApiError::Validation(_))
        ));
        let Err(ApiError::Validation(details)) = parse_json::<Body>(br#"{"items": [], "x": 1}"#)
        else {
            panic!("expected a validation error");
        };
        assert_eq!(details[0].kind, "value_error.extra");
    }
}
