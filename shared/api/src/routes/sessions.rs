//! The sessions group's handlers: `PUT/GET /sessions/{id}`, `POST /sessions/{id}/reconcile`
//! and `POST /sessions/{id}/outcome`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    JsonBody, OptionalJsonBody, Path, RuntimeId, Tenant, session_etag, session_precondition,
};
use crate::services::{reconcile, sessions};
use crate::state::AppState;

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
    let answer = sessions::report_outcome(
        state.store(),
        tenant,
        &session_id,
        request,
        state.config().outcome_window_hours,
        Utc::now(),
    )
    .await?;
    if let (true, Some(plan_id)) = (answer.halted, answer.plan_id) {
        state.announce(tenant, plan_id).await;
    }
    Ok(Json(answer))
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
    if let Some(plan_id) = reconciled.halted {
        // The halt's event before the answer (bounded): someone is paged on it.
        state.announce(tenant, plan_id).await;
    }
    Ok((session_etag(reconciled.revision), Json(reconciled.result)))
}
