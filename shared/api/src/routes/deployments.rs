//! The deployments group's handlers: deploy, pause, resume, withdraw and the
//! deployment status.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{OptionalJsonBody, Path, Tenant};
use crate::services::deployments;
use crate::state::AppState;

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
    state.announce(tenant, plan_id).await;
    Ok(deployment_answer(outcome))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/pause", tag = "deployments", operation_id = "pause_plan",
    summary = "Pause a rollout",
    description = "Stops marking and applying for a deploying or deployed plan; sessions keep their flags and reconcile answers `continue` with the reason \"rollout paused\". The pause is one conditional write on the plan and every migration checks it inside its own write, so none is applied after this returns. 409 from any other status.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<crate::services::deployments::RolloutCommandRequest>, description = "Optional: who asks, for the plan's history", example = json!({"by": "ana"})),
    responses(
        (status = 200, description = "Paused: the counters as they stand", body = planning::DeploymentStatus),
        (status = 404, response = crate::openapi::NotFound), (status = 409, response = crate::openapi::Conflict),
    )
)]
pub(crate) async fn pause_plan(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path((plan_id,)): Path<(Uuid,)>,
    OptionalJsonBody(request): OptionalJsonBody<deployments::RolloutCommandRequest>,
) -> ApiResult<impl IntoResponse> {
    let by = request.unwrap_or_default().by;
    let status = deployments::pause(state.store(), tenant, plan_id, Utc::now(), by).await?;
    state.announce(tenant, plan_id).await;
    Ok(Json(status))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/resume", tag = "deployments", operation_id = "resume_plan",
    summary = "Resume a paused rollout",
    description = "Returns a paused plan to the status it was paused in. A plan paused while deploying takes up its unfinished marking at once: 200 when that finished inline (`deployed`), 202 while it fans out (`deploying`). 409 unless the plan is paused.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<crate::services::deployments::RolloutCommandRequest>, description = "Optional: who asks, for the plan's history", example = json!({"by": "ana"})),
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
    OptionalJsonBody(request): OptionalJsonBody<deployments::RolloutCommandRequest>,
) -> ApiResult<impl IntoResponse> {
    let by = request.unwrap_or_default().by;
    let outcome =
        deployments::resume_rollout(state.deps(), tenant, plan_id, Utc::now(), by).await?;
    state.announce(tenant, plan_id).await;
    Ok(deployment_answer(outcome))
}

#[utoipa::path(
    post, path = "/migration-plans/{plan_id}/withdraw", tag = "deployments", operation_id = "withdraw_plan",
    summary = "Withdraw a rollout",
    description = "Takes a rollout back: from `deploying`, `deployed`, `paused` or `halted` the plan becomes `withdrawing` in one conditional write, after which no migration of it is applied, and every flag it set that reconcile has not applied is cleared through the same paged, resumable walk as marking (`flags_withdrawn` counts them exactly). When the last flag is cleared the plan is `withdrawn` and the scenario's current version is the from-version again. Sessions already migrated stay on the new version. 200 when the withdrawal finished inline, 202 while it fans out; called again while withdrawing it resumes what stalled. 409 from any other status.",
    params(("plan_id" = Uuid, Path, description = "The plan's id")),
    request_body(content = Option<crate::services::deployments::RolloutCommandRequest>, description = "Optional: who asks, for the plan's history", example = json!({"by": "ana"})),
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
    OptionalJsonBody(request): OptionalJsonBody<deployments::RolloutCommandRequest>,
) -> ApiResult<impl IntoResponse> {
    let by = request.unwrap_or_default().by;
    let outcome = deployments::withdraw(state.deps(), tenant, plan_id, Utc::now(), by).await?;
    state.announce(tenant, plan_id).await;
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
