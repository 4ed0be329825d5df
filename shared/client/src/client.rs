//! [`Client`]: one typed async call per operation of the API.

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

    // ----- scenarios -------------------------------------------------------

    /// `PUT /scenarios/{id}`: publish a version (the first, or the next one
    /// for a scenario without a live plan).
    pub async fn put_scenario(
        &self,
        scenario_id: Uuid,
        scenario: &ScenarioInput,
    ) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::PUT_SCENARIO, &[("scenario_id", &id)]).json(scenario)?;
        self.send(call).await?.json()
    }

    /// `GET /scenarios/{id}`: the current version.
    pub async fn get_scenario(&self, scenario_id: Uuid) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        self.send(Call::new(&ops::GET_SCENARIO, &[("scenario_id", &id)]))
            .await?
            .json()
    }

    /// `GET /scenarios/{id}?session_id=…`: the version a new session starts on
    /// (during a partial rollout, the rollout's version when the session is in
    /// its cohort — [`crate::cohort::in_cohort`] computes the same locally).
    pub async fn get_scenario_for_session(
        &self,
        scenario_id: Uuid,
        session_id: &str,
    ) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::GET_SCENARIO, &[("scenario_id", &id)])
            .query("session_id", Some(session_id));
        self.send(call).await?.json()
    }

    /// `GET /scenarios/{id}/versions/{version}`.
    pub async fn get_scenario_version(
        &self,
        scenario_id: Uuid,
        version: i64,
    ) -> Result<ScenarioVersion, Error> {
        let (id, version) = (path_id(scenario_id), version.to_string());
        let call = Call::new(
            &ops::GET_SCENARIO_VERSION,
            &[("scenario_id", &id), ("version", &version)],
        );
        self.send(call).await?.json()
    }

    // ----- sessions --------------------------------------------------------

    /// `PUT /sessions/{id}`: record the session's position, history and
    /// variables. `pending_migration` and `pinned_version` are the service's
    /// and are kept whatever is sent.
    pub async fn put_session(
        &self,
        session_id: &str,
        session: &SessionInput,
        precondition: Precondition,
    ) -> Result<Revisioned<Session>, Error> {
        let mut call = Call::new(&ops::PUT_SESSION, &[("session_id", session_id)]).json(session)?;
        match precondition {
            Precondition::None => {}
            Precondition::Revision(r) => call
                .headers
                .push((http::header::IF_MATCH, format!("\"{r}\""))),
            Precondition::Exists => call.headers.push((http::header::IF_MATCH, "*".into())),
            Precondition::Absent => call.headers.push((http::header::IF_NONE_MATCH, "*".into())),
        }
        self.send(call).await?.revisioned()
    }

    /// `GET /sessions/{id}`, with its revision.
    pub async fn get_session(&self, session_id: &str) -> Result<Revisioned<Session>, Error> {
        self.send(Call::new(&ops::GET_SESSION, &[("session_id", session_id)]))
            .await?
            .revisioned()
    }

    /// `POST /sessions/{id}/reconcile`, as sent: no interpretation. A runtime
    /// wants [`Client::reconcile_on_message`].
    pub async fn reconcile(
        &self,
        session_id: &str,
        request: &ReconcileRequest,
    ) -> Result<Revisioned<ReconciliationResult>, Error> {
        let call =
            Call::new(&ops::RECONCILE_SESSION, &[("session_id", session_id)]).json(request)?;
        self.send(call).await?.revisioned()
    }

    /// `POST /sessions/{id}/outcome`: how the session fared after its last
    /// migration. Retried like reads: a repeat is never counted twice (it
    /// answers `counted: false`).
    pub async fn report_outcome(
        &self,
        session_id: &str,
        request: &OutcomeRequest,
    ) -> Result<OutcomeAnswer, Error> {
        let call = Call::new(&ops::REPORT_OUTCOME, &[("session_id", session_id)]).json(request)?;
        self.send(call).await?.json()
    }

    // ----- plans -----------------------------------------------------------

    /// `POST /scenarios/{id}/migration-plan`: plan the move to a new version.
    /// Not retried: after a lost answer a repeat is a 409 naming the plan made.
    pub async fn create_plan(
        &self,
        scenario_id: Uuid,
        request: &GenerateMigrationPlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::CREATE_PLAN, &[("scenario_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `GET /migration-plans`.
    pub async fn list_plans(&self, filter: &ListPlans) -> Result<PlanList, Error> {
        let call = Call::new(&ops::LIST_PLANS, &[])
            .query("scenario_id", filter.scenario_id)
            .query("status", filter.status.map(status_text))
            .query("limit", filter.limit)
            .query("next_token", filter.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}`.
    pub async fn get_plan(&self, plan_id: Uuid) -> Result<MigrationPlan, Error> {
        self.plan_get(&ops::GET_PLAN, plan_id).await
    }

    /// `GET /migration-plans/{id}/summary`.
    pub async fn get_summary(&self, plan_id: Uuid) -> Result<MigrationSummary, Error> {
        self.plan_get(&ops::GET_SUMMARY, plan_id).await
    }

    /// `GET /migration-plans/{id}/forecast`: what reconcile would answer each
    /// live session if the plan were deployed now.
    pub async fn get_forecast(&self, plan_id: Uuid) -> Result<PlanForecast, Error> {
        self.plan_get(&ops::GET_FORECAST, plan_id).await
    }

    /// `GET /migration-plans/{id}/deployment-status`.
    pub async fn deployment_status(&self, plan_id: Uuid) -> Result<DeploymentStatus, Error> {
        self.plan_get(&ops::DEPLOYMENT_STATUS, plan_id).await
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

    /// `GET /migration-plans/{id}/anchors`: the anchors of a plan too large to
    /// return whole, a page at a time.
    pub async fn get_anchors(&self, plan_id: Uuid, page: &Page) -> Result<AnchorPage, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::GET_ANCHORS, &[("plan_id", &id)])
            .query("limit", page.limit)
            .query("next_token", page.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}/events`: the migrations applied, a page at a time.
    pub async fn get_events(&self, plan_id: Uuid, page: &Page) -> Result<EventList, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::GET_EVENTS, &[("plan_id", &id)])
            .query("limit", page.limit)
            .query("next_token", page.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `PUT /migration-plans/{id}/policies` (a pending plan only).
    pub async fn put_policies(
        &self,
        plan_id: Uuid,
        request: &UpdatePoliciesRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PUT_POLICIES, &[("plan_id", &id)]).json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/approve`. Not retried (a repeat is a 409).
    pub async fn approve_plan(
        &self,
        plan_id: Uuid,
        request: &ApprovePlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::APPROVE_PLAN, &[("plan_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/reject`. Not retried (a repeat is a 409).
    pub async fn reject_plan(
        &self,
        plan_id: Uuid,
        request: &RejectPlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::REJECT_PLAN, &[("plan_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/deploy`: activate the new version and mark
    /// the sessions to migrate — inline (`status: deployed`, 200) or fanned
    /// out (`status: deploying`, 202; follow [`Client::deployment_status`]).
    /// Retried: a repeated deploy resumes the one under way.
    pub async fn deploy_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        self.send(Call::new(&ops::DEPLOY_PLAN, &[("plan_id", &id)]))
            .await?
            .json()
    }

    /// `POST /migration-plans/{id}/deploy` with a body (a rollout guard).
    /// Retried like [`Client::deploy_plan`]: a repeat resumes or reports progress.
    pub async fn deploy_plan_with(
        &self,
        plan_id: Uuid,
        request: &DeployRequest,
    ) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::DEPLOY_PLAN, &[("plan_id", &id)]).json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/pause`: stop marking and applying a
    /// rollout; reconcile answers `continue` meanwhile and sessions keep
    /// their flags. Not retried: a repeat is a 409.
    pub async fn pause_plan(&self, plan_id: Uuid) -> Result<DeploymentStatus, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PAUSE_PLAN, &[("plan_id", &id)]).once();
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/resume`: back to the status it was paused
    /// in (marking goes on: 200 when done inline, 202 while it fans out). Not
    /// retried: a repeat is a 409.
    pub async fn resume_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::RESUME_PLAN, &[("plan_id", &id)]).once();
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/withdraw`: take the rollout back (every
    /// unapplied flag cleared). Sent once: a repeat while withdrawing resumes
    /// and reports progress, from any other status it is a 409.
    pub async fn withdraw_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::WITHDRAW_PLAN, &[("plan_id", &id)]).once();
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}/diagram`: the SVG of one side of the plan.
    pub async fn plan_diagram(&self, plan_id: Uuid, query: &DiagramQuery) -> Result<String, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PLAN_DIAGRAM, &[("plan_id", &id)])
            .query(
                "side",
                query.side.map(|side| match side {
                    DiagramSide::V1 => "v1",
                    DiagramSide::V2 => "v2",
                }),
            )
            .query("anchor", query.anchor.as_deref())
            .query("radius", query.radius);
        let answer = self.send(call).await?;
        String::from_utf8(answer.body).map_err(|e| Error::Unexpected {
            operation: ops::PLAN_DIAGRAM.id,
            message: e.to_string(),
        })
    }
}

fn status_text(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Pending => "pending",
        PlanStatus::Approved => "approved",
        PlanStatus::Deploying => "deploying",
        PlanStatus::Deployed => "deployed",
        PlanStatus::Paused => "paused",
        PlanStatus::Halted => "halted",
        PlanStatus::Withdrawing => "withdrawing",
        PlanStatus::Withdrawn => "withdrawn",
        PlanStatus::Rejected => "rejected",
        PlanStatus::Superseded => "superseded",
        PlanStatus::Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
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
