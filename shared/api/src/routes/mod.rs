//! Axum routers, one per endpoint group. Handlers only parse, call a service and map.

mod deployments;
pub mod openapi;
mod plans;
mod scenarios;
mod sessions;

// The handlers, with the `__path_*` types their `#[utoipa::path]` generates next
// to them: `openapi` names them as `crate::routes::<handler>` in its `paths(...)`.
pub(crate) use deployments::*;
pub(crate) use plans::*;
pub(crate) use scenarios::*;
pub(crate) use sessions::*;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::any::Any;
use std::sync::{Arc, OnceLock};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
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
