//! Axum routers, one per endpoint group. Handlers only parse, call a service and map.

pub mod openapi;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use std::any::Any;
use std::sync::{Arc, OnceLock};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    JsonBody, MAX_BODY_BYTES, OptionalJsonBody, Path, QueryParams, RuntimeId, Tenant, session_etag,
    session_precondition,
};
use crate::services::{deployments, plans, reconcile, scenarios, sessions};
use crate::state::AppState;
use uuid::Uuid;

/// `PUT /scenarios/{id}`, `GET /scenarios/{id}`, `GET /scenarios/{id}/versions/{v}`,
/// and `GET /openapi.json` serving this crate's part of the document
/// ([`openapi::document`]). The scenarios function serves the whole document
/// ([`scenarios_router_with`]).
pub fn scenarios_router() -> Router<AppState> {
    scenarios_router_with(utoipa::openapi::OpenApi::default)
}

/// [`scenarios_router`], its `GET /openapi.json` serving the whole document:
/// [`openapi::document_with`]`(parts())`, `parts` describing the routes of the
/// crates that depend on this one (`console::openapi`). The scenarios function
/// serves it: it has the most room under the Lambda size limit for the document.
pub fn scenarios_router_with(parts: fn() -> utoipa::openapi::OpenApi) -> Router<AppState> {
    // Built on the first request, then the same for the life of the router.
    let text = Arc::new(OnceLock::new());
    Router::new()
        .route(
            "/openapi.json",
            get(move || openapi_json(text.clone(), parts)),
        )
        .route(
            "/scenarios/{scenario_id}",
            put(put_scenario).get(get_scenario),
        )
        .route(
            "/scenarios/{scenario_id}/versions/{version}",
            get(get_scenario_version),
        )
}

/// `PUT/GET /sessions/{id}` and `POST /sessions/{id}/reconcile`.
pub fn sessions_router() -> Router<AppState> {
    Router::new()
        .route("/sessions/{session_id}", put(put_session).get(get_session))
        .route("/sessions/{session_id}/reconcile", post(reconcile_session))
        .route("/sessions/{session_id}/outcome", post(report_outcome))
}

/// Plan generation, listing, review, policies, approve and reject.
pub fn plans_router() -> Router<AppState> {
    Router::new()
        .route("/scenarios/{scenario_id}/migration-plan", post(create_plan))
        .route("/migration-plans", get(list_plans))
        .route("/migration-plans/{plan_id}", get(get_plan))
        .route("/migration-plans/{plan_id}/summary", get(get_summary))
        .route("/migration-plans/{plan_id}/anchors", get(get_anchors))
        .route("/migration-plans/{plan_id}/events", get(get_events))
        .route("/migration-plans/{plan_id}/policies", put(put_policies))
        .route("/migration-plans/{plan_id}/approve", post(approve_plan))
        .route("/migration-plans/{plan_id}/reject", post(reject_plan))
}

/// Deploy, pause, resume, deployment status and the outcome forecast.
pub fn deployments_router() -> Router<AppState> {
    Router::new()
        .route("/migration-plans/{plan_id}/deploy", post(deploy_plan))
        .route("/migration-plans/{plan_id}/pause", post(pause_plan))
        .route("/migration-plans/{plan_id}/resume", post(resume_plan))
        .route("/migration-plans/{plan_id}/withdraw", post(withdraw_plan))
        // Served with the deployments, not the plans: it reads sessions (sampled,
        // BatchGetItem) as marking does, and its code keeps the plans function
        // under the 10 MB binary limit.
        .route("/migration-plans/{plan_id}/forecast", get(get_forecast))
        .route(
            "/migration-plans/{plan_id}/deployment-status",
            get(deployment_status),
        )
}

/// Shared finishing touches: body limit, JSON 404/405 for unknown routes, a
/// request id, and panics turned into 500s.
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    catch_panics(
        router
            .fallback(unknown_route)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
    .with_state(state)
}

/// A panic never takes the process down: a handler that panics answers
/// `500 {"detail": "Internal Server Error"}` (nothing of the panic leaks to the
/// client), the panic is logged with the request id, and the server — or the
/// warm Lambda — goes on serving (the release profile keeps `panic = "unwind"`).
/// Every response carries its `x-request-id`: the client's when it sent a
/// usable one, API Gateway's on Lambda, else a new UUID.
pub fn catch_panics<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(crate::metrics::http::count_responses))
        // Outermost: its span is entered while the panic is caught and logged.
        .layer(middleware::from_fn(with_request_id))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The id the hosting platform gave this request (API Gateway's
/// `apigw-requestid` on Lambda), inserted into the request's extensions by the
/// adapter that serves the router; used when the client sent no `x-request-id`.
#[derive(Debug, Clone)]
pub struct PlatformRequestId(pub String);

fn request_id(request: &Request) -> String {
    let sent = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        // Echoed in a header and in logs: only short, plain ids.
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string);
    // An adapter that knows the platform's own id for the request (the Lambda
    // adapter: API Gateway's) hands it over as an extension.
    let sent = sent.or_else(|| {
        request
            .extensions()
            .get::<PlatformRequestId>()
            .map(|id| id.0.clone())
    });
    sent.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a handler panicked; answered 500");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"detail": "Internal Server Error"})),
    )
        .into_response()
}

/// `GET /health`: for `migrations serve` and containers only (behind API
/// Gateway, Lambda and API Gateway report health themselves).
pub fn health_router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// Every group of this crate in one router (tests), its `GET /openapi.json`
/// serving this crate's part of the document ([`scenarios_router`]).
pub fn app(state: AppState) -> Router {
    app_with(state, utoipa::openapi::OpenApi::default)
}

/// [`app`], its `GET /openapi.json` serving the whole document (see
/// [`scenarios_router_with`]): `migrations serve`, with the console's part.
pub fn app_with(state: AppState, parts: fn() -> utoipa::openapi::OpenApi) -> Router {
    let all = Router::new()
        .merge(health_router())
        .merge(scenarios_router_with(parts))
        .merge(sessions_router())
        .merge(plans_router())
        .merge(deployments_router());
    finish(all, state)
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("Not Found".into())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({"detail": "Method Not Allowed"})),
    )
        .into_response()
}

// ----- meta ------------------------------------------------------------------

/// `text`: the document [`openapi::document_with`]`(parts())`, once built.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta", operation_id = "openapi_json",
    summary = "This document (no tenant needed)",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json(
    text: Arc<OnceLock<Bytes>>,
    parts: fn() -> utoipa::openapi::OpenApi,
) -> Response {
    let text =
        text.get_or_init(|| Bytes::from(openapi::document_text(&openapi::document_with(parts()))));
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.clone(),
    )
        .into_response()
}

/// How long `GET /health` waits for the store.
const HEALTH_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[utoipa::path(
    get, path = "/health", tag = "meta", operation_id = "health",
    summary = "Process up and store reachable (`migrations serve` only; no tenant needed)",
    description = "One read of a key no item has. Not routed behind API Gateway: there Lambda and API Gateway report health.",
    responses(
        (status = 200, description = "Up, and the store answered", body = crate::openapi::Health),
        (status = 503, description = "Up, but the store did not answer in 2 s or failed", body = crate::openapi::Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let probe = state.store().get_plan_header(Uuid::nil(), Uuid::nil());
    let problem = match tokio::time::timeout(HEALTH_STORE_TIMEOUT, probe).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            // The store's error stays in the log: it may name endpoints or tables.
            tracing::warn!(error = %e, "health: the store failed");
            Some("store unavailable".to_string())
        }
        Err(_) => Some("store did not answer within 2 s".to_string()),
    };
    match problem {
        None => Json(crate::openapi::Health {
            status: "ok".into(),
            detail: None,
        })
        .into_response(),
        Some(detail) => {
            tracing::warn!(%detail, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(crate::openapi::Health {
                    status: "unavailable".into(),
                    detail: Some(detail),
                }),
            )
                .into_response()
        }
    }
}

// ----- scenarios -------------------------------------------------------------

#[utoipa::path(
    put, path = "/scenarios/{scenario_id}", tag = "scenarios", operation_id = "put_scenario",
    summary = "Create the first version of a scenario",
    description = "Later versions only arrive through a deployed migration plan.",
    params(("scenario_id" = Uuid, Path, description = "The scenario's id")),
    request_body(content = planning::ScenarioInput, example = crate::openapi::example_scenario_v1),
    responses(
        (status = 201, description = "Created", body = planning::ScenarioVersion),
        (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge),
    )
)]
pub(crate) async fn put_scenario(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(Uuid,)>, ApiError>,
    JsonBody(input): JsonBody<planning::ScenarioInput>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((scenario_id,)) = path?;
    let created = scenarios::create(state.store(), tenant, scenario_id, input, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get, path = "/scenarios/{scenario_id}", tag = "scenarios", operation_id = "get_scenario",
    summary = "The current version of a scenario, or the one a session starts on",
    description = "Without `session_id`: the current version. With it: the version that session should start on — during a partial rollout, the rollout's version for a session in its cohort, else the current one.",
    params(
        ("scenario_id" = Uuid, Path, description = "The scenario's id"),
        ("session_id" = Option<String>, Query, description = "A session about to start: answer the version it starts on"),
    ),
    responses((status = 200, description = "The current version (or the session's)", body = planning::ScenarioVersion), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_scenario(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(query): QueryParams<scenarios::ScenarioQuery>,
    Path((scenario_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        scenarios::current_for(state.store(), tenant, scenario_id, query).await?,
    ))
}

#[utoipa::path(
    get, path = "/scenarios/{scenario_id}/versions/{version}", tag = "scenarios",
    operation_id = "get_scenario_version", summary = "Any version of a scenario",
    params(("scenario_id" = Uuid, Path, description = "The scenario's id"), ("version" = i64, Path, description = "The version number")),
    responses((status = 200, description = "That version", body = planning::ScenarioVersion), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_scenario_version(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((scenario_id, version)): Path<(Uuid, i64)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        scenarios::version(state.store(), tenant, scenario_id, version).await?,
    ))
}

// ----- sessions --------------------------------------------------------------

#[utoipa::path(
    put, path = "/sessions/{session_id}", tag = "sessions", operation_id = "put_session",
    summary = "Record where a session is",
    description = "Accepts the representation GET returns (its server-set fields are ignored). `If-Match: <revision>` writes only over that revision, `If-Match: *` only over an existing session, `If-None-Match: *` only creates; a stale precondition is 412.",
    params(
        ("session_id" = String, Path, description = "The runtime's session id: 1–256 of A–Z a–z 0–9 . _ - : @ + = ~ |", pattern = "^[A-Za-z0-9._:@+=~|-]{1,256}$"),
        ("If-Match" = Option<String>, Header, description = "A revision as returned in ETag (quoted or not, W/ allowed) or *"),
        ("If-None-Match" = Option<String>, Header, description = "Only * (create only)"),
    ),
    request_body(content = planning::SessionInput, example = crate::openapi::example_session),
    responses(
        (status = 200, description = "Updated", body = planning::Session, headers(("ETag" = String, description = "The session's revision as a strong entity tag, e.g. \"3\"; send it back in If-Match"))),
        (status = 201, description = "Created", body = planning::Session, headers(("ETag" = String, description = "The session's revision as a strong entity tag, e.g. \"3\"; send it back in If-Match"))),
        (status = 409, response = crate::openapi::Conflict),
        (status = 412, description = "The If-Match / If-None-Match precondition does not hold", body = crate::openapi::ErrorMessage),
        (status = 413, response = crate::openapi::PayloadTooLarge),
    )
)]
pub(crate) async fn put_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(RuntimeId,)>, ApiError>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<planning::SessionInput>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((RuntimeId(session_id),)) = path?;
    let precondition = session_precondition(&headers)?;
    let written = sessions::record(
        state.store(),
        tenant,
        session_id,
        input,
        precondition,
        Utc::now(),
    )
    .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        session_etag(written.session.revision),
        Json(written.session),
    ))
}

#[utoipa::path(
    get, path = "/sessions/{session_id}", tag = "sessions", operation_id = "get_session",
    summary = "Where a session is",
    params(("session_id" = String, Path, description = "The runtime's session id: 1–256 of A–Z a–z 0–9 . _ - : @ + = ~ |", pattern = "^[A-Za-z0-9._:@+=~|-]{1,256}$")),
    responses((status = 200, description = "The session", body = planning::Session, headers(("ETag" = String, description = "The session's revision as a strong entity tag, e.g. \"3\"; send it back in If-Match"))), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((RuntimeId(session_id),)): Path<(RuntimeId,)>,
) -> ApiResult<impl IntoResponse> {
    let session = sessions::get(state.store(), tenant, &session_id).await?;
    Ok((session_etag(session.revision), Json(session)))
}

#[utoipa::path(
    post, path = "/sessions/{session_id}/outcome", tag = "sessions", operation_id = "report_outcome",
    summary = "How a migrated session fared",
    description = "The runtime reports whether a session went well after its last migration. The report counts once against the plan that migrated the session, if that was within `OUTCOME_WINDOW_HOURS` (default 72); the plan's `reported_failures` feed its guard's `max_reported_failure_rate`. A repeated report, or one for a session no plan migrated in the window, answers `counted: false` and changes nothing.",
    params(("session_id" = String, Path, description = "The runtime's session id: 1–256 of A–Z a–z 0–9 . _ - : @ + = ~ |", pattern = "^[A-Za-z0-9._:@+=~|-]{1,256}$")),
    request_body(content = sessions::OutcomeRequest, example = json!({"ok": false, "reason": "customer abandoned after the new age check"})),
    responses(
        (status = 200, description = "Whether the report counted, and on which plan", body = sessions::OutcomeAnswer),
        (status = 404, response = crate::openapi::NotFound), (status = 413, response = crate::openapi::PayloadTooLarge), (status = 422, response = crate::openapi::ValidationFailed),
    )
)]
pub(crate) async fn report_outcome(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(RuntimeId,)>, ApiError>,
    JsonBody(request): JsonBody<sessions::OutcomeRequest>,
) -> ApiResult<impl IntoResponse> {
    let Path((RuntimeId(session_id),)) = path?;
    Ok(Json(
        sessions::report_outcome(
            state.store(),
            tenant,
            &session_id,
            request,
            state.config().outcome_window_hours,
            Utc::now(),
        )
        .await?,
    ))
}

#[utoipa::path(
    post, path = "/sessions/{session_id}/reconcile", tag = "sessions", operation_id = "reconcile_session",
    summary = "The just-in-time migration",
    description = "Called by the runtime before it processes a customer's turn: applies a pending migration once (teleport, collect fields, run a required action, or exit). The body is optional. With `\"dry_run\": true` it is a preview: the same answer, nothing written (no session change, audit event or counter; the ETag is unchanged).",
    params(("session_id" = String, Path, description = "The runtime's session id: 1–256 of A–Z a–z 0–9 . _ - : @ + = ~ |", pattern = "^[A-Za-z0-9._:@+=~|-]{1,256}$")),
    request_body(content = Option<planning::ReconcileRequest>, description = "Optional: what the runtime already knows", example = json!({"known_fields": {"age": 34}})),
    responses(
        (status = 200, description = "What the runtime does next", body = planning::ReconciliationResult, headers(("ETag" = String, description = "The session's revision as a strong entity tag, e.g. \"3\"; send it back in If-Match"))),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge),
    )
)]
pub(crate) async fn reconcile_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(RuntimeId,)>, ApiError>,
    OptionalJsonBody(request): OptionalJsonBody<planning::ReconcileRequest>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((RuntimeId(session_id),)) = path?;
    let request = request.unwrap_or_default();
    let timer = crate::metrics::ReconcileTimer::start(request.dry_run);
    let reconciled = reconcile::reconcile(
        state.store(),
        state.plan_cache(),
        tenant,
        &session_id,
        request,
        Utc::now(),
    )
    .await?;
    timer.finish(&reconciled.result);
    Ok((session_etag(reconciled.revision), Json(reconciled.result)))
}

// ----- plans -----------------------------------------------------------------

#[utoipa::path(
    post, path = "/scenarios/{scenario_id}/migration-plan", tag = "plans", operation_id = "create_plan",
    summary = "Generate a migration plan",
    description = "Diffs the scenario's current version against `new_scenario`, finds the anchors, decides per anchor how its sessions migrate and counts them. 409 when the version is not greater than the current one or a live plan exists for the same version pair.",
    params(("scenario_id" = Uuid, Path, description = "The scenario's id")),
    request_body(content = crate::services::plans::GenerateMigrationPlanRequest, example = crate::openapi::example_plan_request),
    responses(
        (status = 201, description = "The plan (with `anchors_next_token` when too large to return whole)", body = planning::MigrationPlan),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge),
    )
)]
pub(crate) async fn create_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(Uuid,)>, ApiError>,
    JsonBody(request): JsonBody<plans::GenerateMigrationPlanRequest>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((scenario_id,)) = path?;
    let plan = crate::metrics::plan_generation(plans::generate(
        state.store(),
        state.config(),
        state.plan_permits(),
        tenant,
        scenario_id,
        request,
        Utc::now(),
    ))
    .await?;
    let plan = plans::fit_for_response(plan, state.config().max_response_bytes);
    Ok((StatusCode::CREATED, Json(plan)))
}

#[utoipa::path(
    get, path = "/migration-plans", tag = "plans", operation_id = "list_plans",
    summary = "List plans, newest first",
    params(crate::services::plans::ListPlansQuery),
    responses((status = 200, description = "A page of plans", body = crate::services::plans::PlanList))
)]
pub(crate) async fn list_plans(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(query): QueryParams<plans::ListPlansQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::list(state.store(), tenant, query).await?))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}", tag = "plans", operation_id = "get_plan",
    summary = "A plan",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses((status = 200, description = "The plan (with `anchors_next_token` when too large to return whole)", body = planning::MigrationPlan), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    let plan = plans::load(state.store(), tenant, plan_id).await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config().max_response_bytes,
    )))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/summary", tag = "plans", operation_id = "get_summary",
    summary = "The operator summary: real session counts and warnings",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses((status = 200, description = "The summary; `sessions_by_anchor` lists every anchor", body = planning::MigrationSummary), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_summary(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(plans::summary(state.store(), tenant, plan_id).await?))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/forecast", tag = "plans", operation_id = "get_forecast",
    summary = "What reconcile will answer each live session once the plan is deployed",
    description = "Every session at the plan's from-version is marked and decided as a deployment would, in a dry run, with the plan's current policies (`plan_revision`). Exact up to FORECAST_EXACT_LIMIT counted sessions; above it each anchor or deleted step is sampled and every count is `{estimate, low, high}` (95%).",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses((status = 200, description = "The forecast", body = planning::PlanForecast), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_forecast(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    let forecast = crate::services::forecast::forecast(
        state.store(),
        state.config(),
        state.forecast_cache(),
        state.forecast_permits(),
        tenant,
        plan_id,
    )
    .await?;
    Ok(Json(forecast.as_ref().clone()))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/anchors", tag = "plans", operation_id = "get_anchors",
    summary = "A page of a plan's anchors and their policies",
    params(("plan_id" = Uuid, Path, description = "The plan's id"), crate::services::plans::PageQuery),
    responses((status = 200, description = "A page of anchors", body = crate::services::plans::AnchorPage), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_anchors(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(query): QueryParams<plans::PageQuery>,
    // After the query, whose problems are reported first.
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        plans::anchors_page(state.store(), state.config(), tenant, plan_id, query).await?,
    ))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/events", tag = "plans", operation_id = "get_events",
    summary = "Audit events of the migrations a plan applied",
    params(
        ("plan_id" = Uuid, Path, description = "The plan's id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Events per page (default 50)"),
        ("next_token" = Option<String>, Query, description = "The `next_token` of the previous page"),
    ),
    responses((status = 200, description = "A page of events", body = crate::services::reconcile::EventList), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn get_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(query): QueryParams<plans::PageQuery>,
    // After the query, whose problems are reported first.
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reconcile::events(state.store(), tenant, plan_id, query).await?,
    ))
}

#[utoipa::path(
    put, path = "/migration-plans/{plan_id}/policies", tag = "plans", operation_id = "put_policies",
    summary = "Merge per-anchor policies into a pending plan",
    description = "Keys are anchor content hashes of the plan (an unknown hash is 422); custom conditions are CEL and are compiled here (422 when they do not compile). Pending plans only (409).",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body = crate::services::plans::UpdatePoliciesRequest,
    responses((status = 200, description = "The plan", body = planning::MigrationPlan), (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge))
)]
pub(crate) async fn put_policies(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(Uuid,)>, ApiError>,
    JsonBody(request): JsonBody<plans::UpdatePoliciesRequest>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((plan_id,)) = path?;
    let plan = plans::update_policies(state.store(), tenant, plan_id, request).await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config().max_response_bytes,
    )))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/approve", tag = "plans", operation_id = "approve_plan",
    summary = "Approve a pending plan",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<crate::services::plans::ApprovePlanRequest>, description = "Optional", example = json!({"approved_by": "lead"})),
    responses((status = 200, description = "The approved plan", body = planning::MigrationPlan), (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge))
)]
pub(crate) async fn approve_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(Uuid,)>, ApiError>,
    OptionalJsonBody(request): OptionalJsonBody<plans::ApprovePlanRequest>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((plan_id,)) = path?;
    let plan = plans::approve(
        state.store(),
        tenant,
        plan_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config().max_response_bytes,
    )))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/reject", tag = "plans", operation_id = "reject_plan",
    summary = "Reject a pending plan",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<crate::services::plans::RejectPlanRequest>, description = "Optional", example = json!({"rejected_by": "lead", "reason": "ask the age later"})),
    responses((status = 200, description = "The rejected plan", body = planning::MigrationPlan), (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict), (status = 413, response = crate::openapi::PayloadTooLarge))
)]
pub(crate) async fn reject_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<(Uuid,)>, ApiError>,
    OptionalJsonBody(request): OptionalJsonBody<plans::RejectPlanRequest>,
) -> ApiResult<impl IntoResponse> {
    // After the body: a bad body is reported before a bad path, as before.
    let Path((plan_id,)) = path?;
    let plan = plans::reject(
        state.store(),
        tenant,
        plan_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config().max_response_bytes,
    )))
}

// ----- deployments -----------------------------------------------------------

/// 200 when the deployment's marking finished, 202 while it goes on.
fn deployment_answer(outcome: deployments::DeployOutcome) -> impl IntoResponse {
    let status = if outcome.finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (status, Json(outcome.result))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/deploy", tag = "deployments", operation_id = "deploy_plan",
    summary = "Deploy an approved plan",
    description = "Activates the new version atomically and marks the eligible sessions. 200 when marking finished inline (`deployed`); 202 while it fans out (`deploying`). Calling it again while deploying resumes stalled marking and returns the progress (202); after `deployed`, 409. The optional `guard` halts the rollout (`halted`) when a threshold over its applied migrations is crossed.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<planning::DeployRequest>, description = "Optional", example = json!({"guard": {"max_exit_rate": 0.05, "min_sessions": 50}})),
    responses(
        (status = 200, description = "Deployed: marking finished inline", body = planning::DeploymentResult),
        (status = 202, description = "Deploying: marking fans out through the queue", body = planning::DeploymentResult),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict),
    )
)]
pub(crate) async fn deploy_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
    OptionalJsonBody(request): OptionalJsonBody<planning::DeployRequest>,
) -> ApiResult<impl IntoResponse> {
    let outcome = deployments::deploy(
        state.deps(),
        tenant,
        plan_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok(deployment_answer(outcome))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/pause", tag = "deployments", operation_id = "pause_plan",
    summary = "Pause a rollout",
    description = "Stops marking and applying for a deploying or deployed plan; sessions keep their flags and reconcile answers `continue` with the reason \"rollout paused\". The pause is one conditional write on the plan and every migration checks it inside its own write, so none is applied after this returns. 409 from any other status.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "Paused: the counters as they stand", body = planning::DeploymentStatus),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict),
    )
)]
pub(crate) async fn pause_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        deployments::pause(state.store(), tenant, plan_id, Utc::now()).await?,
    ))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/resume", tag = "deployments", operation_id = "resume_plan",
    summary = "Resume a paused rollout",
    description = "Returns a paused plan to the status it was paused in. A plan paused while deploying takes up its unfinished marking at once: 200 when that finished inline (`deployed`), 202 while it fans out (`deploying`). 409 unless the plan is paused.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "Resumed, nothing left to mark", body = planning::DeploymentResult),
        (status = 202, description = "Resumed, marking goes on through the queue", body = planning::DeploymentResult),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict),
    )
)]
pub(crate) async fn resume_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    let outcome = deployments::resume_rollout(state.deps(), tenant, plan_id, Utc::now()).await?;
    Ok(deployment_answer(outcome))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/withdraw", tag = "deployments", operation_id = "withdraw_plan",
    summary = "Withdraw a rollout",
    description = "Takes a rollout back: from `deploying`, `deployed`, `paused` or `halted` the plan becomes `withdrawing` in one conditional write, after which no migration of it is applied, and every flag it set that reconcile has not applied is cleared through the same paged, resumable walk as marking (`flags_withdrawn` counts them exactly). When the last flag is cleared the plan is `withdrawn` and the scenario's current version is the from-version again. Sessions already migrated stay on the new version. 200 when the withdrawal finished inline, 202 while it fans out; called again while withdrawing it resumes what stalled. 409 from any other status.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "Withdrawn: every unapplied flag cleared", body = planning::DeploymentResult),
        (status = 202, description = "Withdrawing: the flags are being cleared through the queue", body = planning::DeploymentResult),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict),
    )
)]
pub(crate) async fn withdraw_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    let outcome = deployments::withdraw(state.deps(), tenant, plan_id, Utc::now()).await?;
    Ok(deployment_answer(outcome))
}

#[utoipa::path(
    get, path = "/migration-plans/{plan_id}/deployment-status", tag = "deployments",
    operation_id = "deployment_status", summary = "Exact deployment counters",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    responses((status = 200, description = "The counters", body = planning::DeploymentStatus), (status = 404, response = crate::openapi::NotFound))
)]
pub(crate) async fn deployment_status(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        deployments::status(state.store(), tenant, plan_id).await?,
    ))
}
