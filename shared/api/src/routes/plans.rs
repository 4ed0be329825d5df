//! The plans group's handlers: generation, listing, review, the forecast, policies,
//! approve and reject (the forecast is routed with the deployments, see `deployments_router`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, OptionalJsonBody, Path, QueryParams, Tenant};
use crate::services::{plans, reconcile};
use crate::state::AppState;

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
    state.announce(tenant, plan.id).await;
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
    state.announce(tenant, plan_id).await;
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
    state.announce(tenant, plan_id).await;
    Ok(Json(plans::fit_for_response(
        plan,
        state.config().max_response_bytes,
    )))
}
