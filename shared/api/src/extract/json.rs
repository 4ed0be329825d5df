//! JSON request bodies: the size limit (413), located errors, and serde's
//! messages mapped to pydantic v2 error kinds.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorDetail};
use planning::validate::LocPart;

/// A JSON body with unknown fields rejected, located errors and a 6 MB limit.
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body or `null` is `None` (for optional request bodies).
pub struct OptionalJsonBody<T>(pub Option<T>);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::validation(&["body"], "could not read the request body", "json_invalid")
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
    let mut loc = vec![LocPart::from("body")];
    if array_where_object_belongs(&input, &canonical, &mut loc) {
        return Err(ApiError::Validation(vec![ErrorDetail::located(
            loc,
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
    loc: &mut Vec<LocPart>,
) -> bool {
    use serde_json::Value;
    match (input, canonical) {
        (Value::Array(_), Value::Object(_)) => true,
        (Value::Object(given), Value::Object(parsed)) => given.iter().any(|(key, v)| {
            parsed.get(key).is_some_and(|w| {
                loc.push(LocPart::Key(key.clone()));
                let found = array_where_object_belongs(v, w, loc);
                if !found {
                    loc.pop();
                }
                found
            })
        }),
        (Value::Array(given), Value::Array(parsed)) => {
            given.iter().zip(parsed).enumerate().any(|(i, (v, w))| {
                loc.push(LocPart::Index(i));
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
        let mut loc = vec![LocPart::from("body")];
        for segment in error.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => loc.push(LocPart::Index(*index)),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    loc.push(LocPart::Key(key.clone()))
                }
                Segment::Unknown => {}
            }
        }
        json_error(loc, error.inner())
    })?;
    // Trailing garbage after the document is malformed JSON too.
    deserializer
        .end()
        .map_err(|e| json_error(vec![LocPart::from("body")], &e))?;
    Ok(value)
}

fn json_error(mut loc: Vec<LocPart>, inner: &serde_json::Error) -> ApiError {
    let message = inner.to_string();
    let kind = if inner.is_syntax() || inner.is_eof() {
        "json_invalid"
    } else {
        error_kind(&message)
    };
    // pydantic locates a missing or unknown field at the field itself; serde
    // names it only in the message.
    // (serde_path_to_error already ends the path with an unknown field's name).
    if let Some(field) = named_field(&message)
        && loc.last() != Some(&LocPart::Key(field.clone()))
    {
        loc.push(LocPart::Key(field));
    }
    ApiError::Validation(vec![ErrorDetail::located(
        loc,
        without_input(&message),
        kind,
    )])
}

/// The field a `missing field `x`` / `unknown field `x`` message names.
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_string)
}

/// The pydantic v2 error type (what FastAPI answers today) for a serde error
/// message: `missing`, `extra_forbidden`, `uuid_parsing`, `int_parsing`, ….
/// serde says what it expected; pydantic names the same thing.
///
/// Why the message and not a typed error: serde gives a format's error type
/// only its constructors (`missing_field`, `invalid_type(Unexpected, &dyn
/// Expected)`, …) and `serde_json::Error` keeps just the text and a category,
/// so a typed kind would take a wrapper around every `Deserializer`, `Visitor`
/// and access method of serde_json. The texts are serde's own `de::Error`
/// messages, stable since serde 1.0; `serde_messages_map_to_pydantic_v2_types`
/// pins each type (docs/design.md, "Error types read from serde's messages").
pub(crate) fn error_kind(message: &str) -> &'static str {
    let text = message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i]);
    if text.starts_with("missing field") {
        return "missing";
    }
    if text.starts_with("unknown field") {
        return "extra_forbidden";
    }
    if text.starts_with("unknown variant") {
        return "enum";
    }
    if text.starts_with("UUID parsing failed") || text.contains("expected UUID") {
        return "uuid_parsing";
    }
    // serde_urlencoded and `str::parse` say this for a query integer.
    if text.contains("invalid digit") || text.contains("cannot parse integer") {
        return "int_parsing";
    }
    if text.contains("number too large") || text.contains("number too small") {
        return "int_parsing_size";
    }
    let given_string = text.starts_with("invalid type: string");
    let expected = text.rsplit_once("expected ").map_or("", |(_, e)| e);
    let integer = ["i64", "u64", "i32", "u32", "usize", "an integer"]
        .iter()
        .any(|t| expected.starts_with(t));
    if integer {
        if text.starts_with("invalid value: integer") {
            return "greater_than_equal";
        }
        return if given_string {
            "int_parsing"
        } else {
            "int_type"
        };
    }
    if expected.starts_with("f64") || expected.starts_with("f32") {
        return if given_string {
            "float_parsing"
        } else {
            "float_type"
        };
    }
    if expected.starts_with("a boolean") {
        return if given_string {
            "bool_parsing"
        } else {
            "bool_type"
        };
    }
    if expected.starts_with("a string") || expected.starts_with("a borrowed string") {
        return "string_type";
    }
    if expected.starts_with("a sequence") {
        return "list_type";
    }
    if expected.starts_with("struct ") {
        return "model_type";
    }
    if expected.starts_with("a map") {
        return "dict_type";
    }
    // chrono's messages for a `DateTime` that does not parse.
    let chrono = [
        "input contains invalid characters",
        "premature end of input",
        "input is out of range",
        "trailing input",
        "input is not enough",
        "no possible date and time",
    ];
    if chrono.iter().any(|m| text.contains(m)) {
        return "datetime_from_date_parsing";
    }
    "value_error"
}

/// serde quotes what was sent (`invalid type: string "…"`, `invalid value:
/// integer `7``, `unknown variant `…``): keep what was expected and where, never
/// the value — it may be a customer's data.
pub(super) fn without_input(message: &str) -> String {
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
            return Err(ApiError::validation(&["body"], "Field required", "missing"));
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
        // No body, or JSON `null`: FastAPI takes both for an optional body.
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;

    use tower::ServiceExt;
    #[tokio::test]
    async fn an_optional_body_may_be_absent_empty_or_null_but_not_unknown() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        struct Approve {
            #[serde(default)]
            approved_by: Option<String>,
        }
        async fn take(OptionalJsonBody(body): OptionalJsonBody<Approve>) -> String {
            format!("{:?}", body.map(|b| b.approved_by))
        }
        let app = Router::new().route("/", axum::routing::post(take));
        for (body, expected) in [
            ("", "None"),
            ("  ", "None"),
            ("null", "None"),
            (" null\n", "None"),
            (r#"{"approved_by": "lead"}"#, r#"Some(Some("lead"))"#),
        ] {
            let request = HttpRequest::post("/").body(Body::from(body)).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{body:?}");
            let text = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&text), expected, "{body:?}");
        }
        let request = HttpRequest::post("/")
            .body(Body::from(r#"{"approver": "x"}"#))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 422);
        let text = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["detail"][0]["type"], "extra_forbidden");
        assert_eq!(
            json["detail"][0]["loc"],
            serde_json::json!(["body", "approver"])
        );
    }

    #[test]
    fn serde_messages_map_to_pydantic_v2_types() {
        for (message, kind) in [
            ("missing field `name` at line 1 column 2", "missing"),
            ("unknown field `x`, expected `a` or `b`", "extra_forbidden"),
            ("unknown variant `nope`, expected one of `a`, `b`", "enum"),
            ("invalid type: string \"x\", expected i64", "int_parsing"),
            ("invalid type: boolean `true`, expected i64", "int_type"),
            (
                "invalid value: integer `-1`, expected u64",
                "greater_than_equal",
            ),
            ("invalid digit found in string", "int_parsing"),
            ("UUID parsing failed: invalid character", "uuid_parsing"),
            ("invalid type: integer `1`, expected UUID", "uuid_parsing"),
            (
                "invalid type: integer `1`, expected a string",
                "string_type",
            ),
            (
                "invalid type: string \"x\", expected a boolean",
                "bool_parsing",
            ),
            ("invalid type: map, expected a sequence", "list_type"),
            (
                "invalid type: string \"x\", expected struct StepInput",
                "model_type",
            ),
            ("invalid type: sequence, expected a map", "dict_type"),
            (
                "input contains invalid characters",
                "datetime_from_date_parsing",
            ),
        ] {
            assert_eq!(error_kind(message), kind, "{message}");
        }
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
            serde_json::json!(["body", "items", 1])
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
        assert_eq!(loc, serde_json::json!(["body", "items", 1, "n"]));
        // A string where an integer belongs: pydantic v2 says `int_parsing`.
        assert_eq!(details[0].kind, "int_parsing");
        assert!(matches!(
            parse_json::<Body>(b"{} trailing"),
            Err(ApiError::Validation(_))
        ));
        let Err(ApiError::Validation(details)) = parse_json::<Body>(br#"{"items": [], "x": 1}"#)
        else {
            panic!("expected a validation error");
        };
        assert_eq!(details[0].kind, "extra_forbidden");
        assert_eq!(
            serde_json::to_value(&details[0].loc).unwrap(),
            serde_json::json!(["body", "x"])
        );
        let Err(ApiError::Validation(details)) = parse_json::<Body>(b"{}") else {
            panic!("expected a validation error");
        };
        assert_eq!(details[0].kind, "missing");
        assert_eq!(
            serde_json::to_value(&details[0].loc).unwrap(),
            serde_json::json!(["body", "items"])
        );
        let Err(ApiError::Validation(details)) = parse_json::<Body>(b"{\"items\": [") else {
            panic!("expected a validation error");
        };
        assert_eq!(details[0].kind, "json_invalid");
    }
}
