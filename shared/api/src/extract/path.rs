//! Typed path parameters with FastAPI-style 422s located at `["path", name]`.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;

/// A path parameter's type: how its raw segment parses, or why it does not
/// (the message and pydantic kind of the 422, located at `["path", name]`).
pub trait PathParam: Sized {
    fn parse(raw: &str) -> Result<Self, ParamProblem>;
}

/// Why a path segment is not a valid parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    pub msg: &'static str,
    pub kind: &'static str,
}

/// A UUID in its canonical hyphenated form (36 characters, any case); the
/// braced, URN and simple forms that `Uuid::parse_str` also takes are refused,
/// so one object has one URL.
impl PathParam for Uuid {
    fn parse(raw: &str) -> Result<Self, ParamProblem> {
        (raw.len() == 36)
            .then(|| Uuid::parse_str(raw).ok())
            .flatten()
            .ok_or(ParamProblem {
                msg: "Input should be a valid UUID",
                kind: "uuid_parsing",
            })
    }
}

impl PathParam for i64 {
    fn parse(raw: &str) -> Result<Self, ParamProblem> {
        raw.parse().map_err(|_| ParamProblem {
            msg: "Input should be a valid integer, unable to parse string as an integer",
            kind: "int_parsing",
        })
    }
}

/// An identifier chosen by the runtime (session ids need not be UUIDs): 1 to
/// 256 characters from `A–Z a–z 0–9 . _ - : @ + = ~ |` — enough for channel
/// prefixes, phone numbers and e-mail addresses, nothing that needs escaping
/// in a URL, a log line or a storage key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeId(pub String);

impl PathParam for RuntimeId {
    fn parse(value: &str) -> Result<Self, ParamProblem> {
        if value.is_empty() {
            return Err(ParamProblem {
                msg: "String should have at least 1 character",
                kind: "string_too_short",
            });
        }
        if value.len() > 256 {
            return Err(ParamProblem {
                msg: "String should have at most 256 characters",
                kind: "string_too_long",
            });
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@+=~|".contains(c);
        if !value.chars().all(allowed) {
            return Err(ParamProblem {
                msg: "String should match pattern '^[A-Za-z0-9._:@+=~|-]{1,256}$' (letters, digits and . _ - : @ + = ~ |)",
                kind: "string_pattern_mismatch",
            });
        }
        Ok(RuntimeId(value.to_string()))
    }
}

/// Typed path parameters, in the order the route names them: `Path<(Uuid,)>`
/// for `/migration-plans/{plan_id}`, `Path<(Uuid, i64)>` for
/// `/scenarios/{scenario_id}/versions/{version}`. A segment that does not parse
/// is a 422 located at `["path", "<name>"]`, as FastAPI answers.
pub struct Path<T>(pub T);

fn param<T: PathParam>(params: &RawPathParams, index: usize) -> Result<T, ApiError> {
    let (name, raw) = params
        .iter()
        .nth(index)
        .ok_or_else(|| ApiError::validation(&["path"], "Field required", "missing"))?;
    T::parse(raw).map_err(|p| ApiError::validation(&["path", name], p.msg, p.kind))
}

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<RawPathParams, ApiError> {
    RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::validation(&["path"], "invalid path parameters", "string_type"))
}

impl<S: Send + Sync, A: PathParam> FromRequestParts<S> for Path<(A,)> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        Ok(Path((param(&params, 0)?,)))
    }
}

impl<S: Send + Sync, A: PathParam, B: PathParam> FromRequestParts<S> for Path<(A, B)> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        Ok(Path((param(&params, 0)?, param(&params, 1)?)))
    }
}

/// Named path parameters parsed on demand (the console's handlers); the API's
/// routes use the typed [`Path`].
pub struct PathParams(RawPathParams);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_params(parts, state).await.map(PathParams)
    }
}

impl PathParams {
    fn raw(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::validation(&["path", name], "Field required", "missing"))
    }

    fn typed<T: PathParam>(&self, name: &str) -> Result<T, ApiError> {
        T::parse(self.raw(name)?).map_err(|p| ApiError::validation(&["path", name], p.msg, p.kind))
    }

    /// A canonical UUID (see [`PathParam`] for `Uuid`).
    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        self.typed(name)
    }

    pub fn int(&self, name: &str) -> Result<i64, ApiError> {
        self.typed(name)
    }

    /// A runtime-chosen identifier (see [`RuntimeId`]).
    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        self.typed::<RuntimeId>(name).map(|id| id.0)
    }
}
