//! The scenarios group's handlers: `PUT /scenarios/{id}`, `GET /scenarios/{id}`,
//! `GET /scenarios/{id}/versions/{v}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams, Tenant};
use crate::services::scenarios;
use crate::state::AppState;

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
