//! [`Client`]: one typed async call per operation of the API. The calls of each
//! endpoint group are in their own file (an `impl Client` block each); this file
//! has the builder, the request and its answer, and sending with retries.

mod deployments;
mod plans;
mod scenarios;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Error, ErrorBody};
use crate::model::*;
use crate::operations::{self as ops, Operation, encode_segment};
use crate::retry::RetryPolicy;

/// How the client proves who it is.
#[derive(Clone, Default)]
pub enum Auth {
    /// Nothing: `migrations serve`, `cargo lambda watch`, a demo stack. The
    /// tenant header is trusted as sent.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, for stacks with a JWT authorizer. The
    /// token's tenant claim must list the client's tenant.
    Bearer(String),
    /// AWS Signature Version 4 (service `execute-api`), for stacks behind IAM
    /// authorization (the template's default). The role's tenant bindings must
    /// list the client's tenant.
    #[cfg(feature = "sigv4")]
    SigV4(crate::sigv4::SigV4),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(..)",
            #[cfg(feature = "sigv4")]
            Auth::SigV4(_) => "Auth::SigV4(..)",
        })
    }
}

/// A `PUT /sessions/{id}` precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Last writer wins for the runtime's fields (the product's own fields are
    /// kept whatever happens).
    #[default]
    None,
    /// `If-Match: "<revision>"`: only if nobody wrote since that revision, else 412.
    Revision(u64),
    /// `If-Match: *`: only if the session exists.
    Exists,
    /// `If-None-Match: *`: only if it does not (create).
    Absent,
}

/// An answer with the session's revision from its `ETag` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Revisioned<T> {
    pub value: T,
    /// The session's revision after the call (`ETag: "7"` is 7).
    pub revision: Option<u64>,
}

/// The filters and page of `GET /migration-plans`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPlans {
    pub scenario_id: Option<Uuid>,
    pub status: Option<PlanStatus>,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// A page of a paged list (`…/anchors`, `…/events`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// What `GET /migration-plans/{id}/diagram` draws.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiagramQuery {
    pub side: Option<DiagramSide>,
    /// Only the neighbourhood of this anchor (its content hash)…
    pub anchor: Option<String>,
    /// …this many steps around it.
    pub radius: Option<u32>,
}

/// One request and its answer, as an observer set with
/// [`ClientBuilder::observer`] sees it: for logs and metrics — and for the
/// contract test, which checks every exchange against the OpenAPI document.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: &'static Operation,
    /// The path as sent (values filled in), without the query.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub request_body: Option<serde_json::Value>,
    pub status: u16,
    pub response_body: Vec<u8>,
    pub content_type: Option<String>,
}

type Observer = Arc<dyn Fn(&Exchange) + Send + Sync>;

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    tenant: Uuid,
    auth: Auth,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    observer: Option<Observer>,
}

impl ClientBuilder {
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A `reqwest::Client` of your own (proxies, TLS roots, pool sizes).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Called with every exchange that got an answer, retried attempts included.
    pub fn observer(mut self, observer: impl Fn(&Exchange) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                // Idle connections to API Gateway are closed after a while: do
                // not keep ones the other side may already have dropped.
                .pool_idle_timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(3))
                .build()
                .map_err(|source| Error::Transport {
                    operation: "build",
                    source,
                })?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                http,
                auth: self.auth,
                retry: self.retry,
                observer: self.observer,
            }),
            tenant: self.tenant,
        })
    }
}

struct Inner {
    base_url: String,
    http: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    observer: Option<Observer>,
}

/// A client for one tenant. Cheap to clone; [`Client::for_tenant`] gives one
/// for another tenant sharing the same connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    tenant: Uuid,
}

/// Whether a call may be sent again after a failure that may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Reads, `PUT`s, reconcile (the service applies a migration once however
    /// often it is asked) and deploy (a repeated deploy resumes).
    Safe,
    /// Creating a plan, approving, rejecting: a repeat after a lost answer
    /// would be refused (409), so the caller decides.
    Once,
}

/// One request, before it is sent.
struct Call {
    operation: &'static Operation,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
    replay: Replay,
}

impl Call {
    fn new(operation: &'static Operation, values: &[(&str, &str)]) -> Self {
        Call {
            operation,
            path: operation.fill(values),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            replay: Replay::Safe,
        }
    }

    fn json(mut self, body: &impl Serialize) -> Result<Self, Error> {
        let value = serde_json::to_value(body).map_err(|e| Error::Unexpected {
            operation: self.operation.id,
            message: format!("request body: {e}"),
        })?;
        self.body = Some(value);
        Ok(self)
    }

    fn once(mut self) -> Self {
        self.replay = Replay::Once;
        self
    }

    fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }
}

/// An answer with a success status.
struct Answer {
    body: Vec<u8>,
    etag: Option<String>,
    operation: &'static str,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Unexpected {
            operation: self.operation,
            message: e.to_string(),
        })
    }

    fn revision(&self) -> Option<u64> {
        self.etag.as_deref().and_then(parse_etag)
    }

    fn revisioned<T: DeserializeOwned>(&self) -> Result<Revisioned<T>, Error> {
        Ok(Revisioned {
            value: self.json()?,
            revision: self.revision(),
        })
    }
}

/// `"7"` (or `W/"7"`) → 7.
fn parse_etag(etag: &str) -> Option<u64> {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

fn path_id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

impl Client {
    /// A client of the service at `base_url` (`http://127.0.0.1:8080`, or the
    /// stack's `ApiUrl`) acting for `tenant`.
    pub fn builder(base_url: impl Into<String>, tenant: Uuid) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            tenant,
            auth: Auth::None,
            retry: RetryPolicy::default(),
            http: None,
            observer: None,
        }
    }

    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// The same client acting for another tenant.
    pub fn for_tenant(&self, tenant: Uuid) -> Client {
        Client {
            inner: self.inner.clone(),
            tenant,
        }
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    async fn send(&self, call: Call) -> Result<Answer, Error> {
        let body = match &call.body {
            Some(value) => Some(serde_json::to_vec(value).map_err(|e| Error::Unexpected {
                operation: call.operation.id,
                message: format!("request body: {e}"),
            })?),
            None => None,
        };
        let policy = match call.replay {
            Replay::Safe => self.inner.retry,
            Replay::Once => RetryPolicy {
                max_attempts: 1,
                ..self.inner.retry
            },
        };
        policy
            .run(call.operation.id, |remaining| {
                self.attempt(&call, body.as_deref(), remaining)
            })
            .await
    }

    async fn attempt(
        &self,
        call: &Call,
        body: Option<&[u8]>,
        remaining: Duration,
    ) -> Result<Answer, Error> {
        let operation = call.operation.id;
        let mut url = format!("{}{}", self.inner.base_url, call.path);
        if !call.query.is_empty() {
            let pairs: Vec<String> = call
                .query
                .iter()
                .map(|(name, value)| format!("{name}={}", encode_segment(value)))
                .collect();
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        let mut headers = HeaderMap::new();
        let header = |value: &str| {
            HeaderValue::from_str(value).map_err(|e| Error::Signing(format!("header value: {e}")))
        };
        headers.insert("x-tenant-id", header(&self.tenant.to_string())?);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        if body.is_some() {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        for (name, value) in &call.headers {
            headers.insert(name.clone(), header(value)?);
        }
        match &self.inner.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                let mut value = header(&format!("Bearer {token}"))?;
                value.set_sensitive(true);
                headers.insert("authorization", value);
            }
            #[cfg(feature = "sigv4")]
            Auth::SigV4(signer) => {
                signer
                    .sign(
                        call.operation.method,
                        &url,
                        &mut headers,
                        body.unwrap_or_default(),
                    )
                    .await?;
            }
        }
        let method = reqwest::Method::from_bytes(call.operation.method.as_bytes())
            .map_err(|e| Error::Signing(e.to_string()))?;
        let mut request = self
            .inner
            .http
            .request(method, &url)
            .headers(headers)
            .timeout(remaining);
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let transport = |source| Error::Transport { operation, source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text_header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = text_header("etag");
        let content_type = text_header("content-type");
        let retry_after = text_header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(transport)?.to_vec();
        if let Some(observer) = &self.inner.observer {
            observer(&Exchange {
                operation: call.operation,
                path: call.path.clone(),
                query: call.query.clone(),
                request_body: call.body.clone(),
                status,
                response_body: bytes.clone(),
                content_type,
            });
        }
        if !(200..300).contains(&status) {
            return Err(Error::Status {
                operation,
                status,
                body: ErrorBody::parse(&bytes),
                retry_after,
            });
        }
        Ok(Answer {
            body: bytes,
            etag,
            operation,
        })
    }

    // ----- service ---------------------------------------------------------

    /// `GET /health`: the process answers and its store is reachable.
    pub async fn health(&self) -> Result<Health, Error> {
        self.send(Call::new(&ops::HEALTH, &[])).await?.json()
    }

    /// `GET /openapi.json`: the OpenAPI 3.1 document the service serves.
    pub async fn openapi_document(&self) -> Result<serde_json::Value, Error> {
        self.send(Call::new(&ops::OPENAPI_JSON, &[])).await?.json()
    }

    async fn plan_get<T: DeserializeOwned>(
        &self,
        operation: &'static Operation,
        plan_id: Uuid,
    ) -> Result<T, Error> {
        let id = path_id(plan_id);
        self.send(Call::new(operation, &[("plan_id", &id)]))
            .await?
            .json()
    }
}

#[cfg(test)]
mod tests {
    use super::plans::status_text;
    use super::*;

    #[test]
    fn etags_are_revisions() {
        assert_eq!(parse_etag("\"7\""), Some(7));
        assert_eq!(parse_etag("W/\"12\""), Some(12));
        assert_eq!(parse_etag("*"), None);
    }

    #[test]
    fn statuses_are_spelled_as_the_api_spells_them() {
        for status in [
            PlanStatus::Pending,
            PlanStatus::Approved,
            PlanStatus::Deploying,
            PlanStatus::Deployed,
            PlanStatus::Paused,
            PlanStatus::Rejected,
            PlanStatus::Superseded,
            PlanStatus::Expired,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status_text(status).into())
            );
        }
    }
}
