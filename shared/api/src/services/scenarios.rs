//! Scenario versions: the first version arrives by PUT, later ones through deployed plans.

use chrono::{DateTime, Utc};
use planning::hash::scenario_checksum;
use planning::validate::validate_scenario;
use planning::{ScenarioInput, ScenarioVersion};
use store::{Store, StoreError};
use uuid::Uuid;

use crate::services::error::{Input, Issue, ServiceError, ServiceResult};

/// Validate a submitted definition, locating problems under `prefix` inside
/// the submitted document.
pub(crate) fn validated(input: &ScenarioInput, prefix: &[&str]) -> ServiceResult<()> {
    validate_scenario(input).map_err(|issues| ServiceError::Invalid {
        input: Input::Document,
        issues: issues
            .into_iter()
            .map(|issue| Issue::from_validation(prefix, issue))
            .collect(),
    })
}

pub(crate) fn version_from_input(
    tenant: Uuid,
    scenario_id: Uuid,
    input: ScenarioInput,
    now: DateTime<Utc>,
) -> ScenarioVersion {
    let checksum = scenario_checksum(&input);
    ScenarioVersion {
        id: scenario_id,
        tenant_id: tenant,
        name: input.name,
        description: input.description,
        version: input.version,
        entry_step_id: input.entry_step_id,
        steps: input.steps,
        checksum,
        created_at: now,
    }
}

pub async fn create(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    input: ScenarioInput,
    now: DateTime<Utc>,
) -> ServiceResult<ScenarioVersion> {
    validated(&input, &[])?;
    let version = version_from_input(tenant, scenario_id, input, now);
    match store.create_scenario(&version).await {
        Ok(()) => Ok(version),
        Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(
            "Scenario already exists; new versions arrive through a deployed migration plan".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn current(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
) -> ServiceResult<ScenarioVersion> {
    store
        .get_current_scenario(tenant, scenario_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Scenario", scenario_id))
}

/// `GET /scenarios/{id}` query. Unknown query parameters are ignored, as FastAPI does.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ScenarioQuery {
    /// A session about to start: answer the version it should start on.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// The current version, or with a `session_id` the version that session
/// starts on: during a partial rollout, the rollout's version when its cohort
/// holds the session (the bucket the runtime can compute too), else the
/// current one.
pub async fn current_for(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    query: ScenarioQuery,
) -> ServiceResult<ScenarioVersion> {
    let rollout = match &query.session_id {
        Some(session_id) => store
            .get_scenario_head(tenant, scenario_id)
            .await?
            .and_then(|head| head.rollout)
            .filter(|rollout| rollout.reaches(session_id)),
        None => None,
    };
    match rollout {
        Some(rollout) => version(store, tenant, scenario_id, rollout.to_version).await,
        None => current(store, tenant, scenario_id).await,
    }
}

pub async fn version(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
) -> ServiceResult<ScenarioVersion> {
    store
        .get_scenario_version(tenant, scenario_id, version)
        .await?
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "Scenario {scenario_id} version {version} not found"
            ))
        })
}
