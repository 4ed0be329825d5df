//! Axum routers, one per endpoint group. Handlers only parse, call a service and map.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    JsonBody, MAX_BODY_BYTES, OptionalJsonBody, PathParams, QueryParams, Tenant, session_etag,
    session_precondition,
};
use crate::services::{deployments, plans, reconcile, scenarios, sessions};
use crate::state::AppState;

/// `PUT /scenarios/{id}`, `GET /scenarios/{id}`, `GET /scenarios/{id}/versions/{v}`.
pub fn scenarios_router() -> Router<AppState> {
    Router::new()
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

/// Deploy and deployment status.
pub fn deployments_router() -> Router<AppState> {
    Router::new()
        .route("/migration-plans/{plan_id}/deploy", post(deploy_plan))
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
    #[cfg(feature = "lambda")]
    let sent = sent.or_else(|| crate::lambda::api_gateway_request_id(request));
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

/// Every group in one router (`migrations serve`, tests).
pub fn app(state: AppState) -> Router {
    let all = Router::new()
        .merge(scenarios_router())
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

// ----- scenarios -------------------------------------------------------------

async fn put_scenario(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    JsonBody(input): JsonBody<planning::ScenarioInput>,
) -> ApiResult<impl IntoResponse> {
    let scenario_id = path.uuid("scenario_id")?;
    let created =
        scenarios::create(state.store.as_ref(), tenant, scenario_id, input, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn get_scenario(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let scenario_id = path.uuid("scenario_id")?;
    Ok(Json(
        scenarios::current(state.store.as_ref(), tenant, scenario_id).await?,
    ))
}

async fn get_scenario_version(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let scenario_id = path.uuid("scenario_id")?;
    let version = path.int("version")?;
    Ok(Json(
        scenarios::version(state.store.as_ref(), tenant, scenario_id, version).await?,
    ))
}

// ----- sessions --------------------------------------------------------------

async fn put_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    headers: HeaderMap,
    JsonBody(input): JsonBody<planning::SessionInput>,
) -> ApiResult<impl IntoResponse> {
    let session_id = path.text("session_id")?;
    let precondition = session_precondition(&headers)?;
    let written = sessions::record(
        state.store.as_ref(),
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

async fn get_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let session_id = path.text("session_id")?;
    let session = sessions::get(state.store.as_ref(), tenant, &session_id).await?;
    Ok((session_etag(session.revision), Json(session)))
}

async fn reconcile_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    OptionalJsonBody(request): OptionalJsonBody<planning::ReconcileRequest>,
) -> ApiResult<impl IntoResponse> {
    let session_id = path.text("session_id")?;
    let reconciled = reconcile::reconcile(
        state.store.as_ref(),
        &state.plan_cache,
        tenant,
        &session_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok((session_etag(reconciled.revision), Json(reconciled.result)))
}

// ----- plans -----------------------------------------------------------------

async fn create_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    JsonBody(request): JsonBody<plans::GenerateMigrationPlanRequest>,
) -> ApiResult<impl IntoResponse> {
    let scenario_id = path.uuid("scenario_id")?;
    let plan = plans::generate(
        state.store.as_ref(),
        &state.config,
        &state.plan_permits,
        tenant,
        scenario_id,
        request,
        Utc::now(),
    )
    .await?;
    let plan = plans::fit_for_response(plan, state.config.max_response_bytes);
    Ok((StatusCode::CREATED, Json(plan)))
}

async fn list_plans(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(query): QueryParams<plans::ListPlansQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        plans::list(state.store.as_ref(), tenant, query).await?,
    ))
}

async fn get_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let plan = plans::load(state.store.as_ref(), tenant, path.uuid("plan_id")?).await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config.max_response_bytes,
    )))
}

async fn get_summary(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        plans::summary(state.store.as_ref(), tenant, path.uuid("plan_id")?).await?,
    ))
}

async fn get_anchors(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    QueryParams(query): QueryParams<plans::PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    Ok(Json(
        plans::anchors_page(state.store.as_ref(), &state.config, tenant, plan_id, query).await?,
    ))
}

async fn get_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    QueryParams(query): QueryParams<plans::PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    Ok(Json(
        reconcile::events(state.store.as_ref(), tenant, plan_id, query).await?,
    ))
}

async fn put_policies(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    JsonBody(request): JsonBody<plans::UpdatePoliciesRequest>,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    let plan = plans::update_policies(state.store.as_ref(), tenant, plan_id, request).await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config.max_response_bytes,
    )))
}

async fn approve_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    OptionalJsonBody(request): OptionalJsonBody<plans::ApprovePlanRequest>,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    let plan = plans::approve(
        state.store.as_ref(),
        tenant,
        plan_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config.max_response_bytes,
    )))
}

async fn reject_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
    OptionalJsonBody(request): OptionalJsonBody<plans::RejectPlanRequest>,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    let plan = plans::reject(
        state.store.as_ref(),
        tenant,
        plan_id,
        request.unwrap_or_default(),
        Utc::now(),
    )
    .await?;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config.max_response_bytes,
    )))
}

// ----- deployments -----------------------------------------------------------

async fn deploy_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    let outcome = deployments::deploy(&state, tenant, plan_id, Utc::now()).await?;
    let status = if outcome.finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome.result)))
}

async fn deployment_status(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let plan_id = path.uuid("plan_id")?;
    Ok(Json(
        deployments::status(state.store.as_ref(), tenant, plan_id).await?,
    ))
}
