//! Migration plans: generation, review, policies and the approve/reject lifecycle.
//! The plan as the HTTP API answers it (whole, or its anchors by pages) is in [`paging`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use planning::lifecycle::{self, PlanCommand};
use planning::plan::{SessionCounts, compute_plan};
use planning::{AnchorMigrationPolicy, MigrationPlan, MigrationSummary, PlanStatus, ScenarioInput};
use serde::{Deserialize, Serialize};
use store::{PlanPage, PlanQuery, PlanTransition, Store, StoreError};
use uuid::Uuid;

use crate::config::Config;
use crate::services::error::{Input, Issue, ServiceError, ServiceResult};
use crate::services::scenarios::{validated, version_from_input};

mod paging;

pub use paging::{AnchorPage, PlanResponse};
pub(crate) use paging::{anchors_page, fit_for_response};

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateMigrationPlanRequest {
    pub new_scenario: ScenarioInput,
    #[serde(default)]
    pub created_by: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePlanRequest {
    #[serde(default)]
    pub approved_by: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectPlanRequest {
    #[serde(default)]
    pub rejected_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePoliciesRequest {
    pub policies: BTreeMap<String, AnchorMigrationPolicy>,
}

/// Unknown query parameters are ignored, as FastAPI does.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPlansQuery {
    #[serde(default)]
    pub scenario_id: Option<Uuid>,
    #[serde(default)]
    pub plan_status: Option<PlanStatus>,
    /// Accepted as an alias of `plan_status`.
    #[serde(default)]
    pub status: Option<PlanStatus>,
    /// Plans per page.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<i64>,
    /// The `next_token` of the previous page.
    #[serde(default)]
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanList {
    pub plans: Vec<planning::MigrationPlanSummaryItem>,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Unknown query parameters are ignored, as FastAPI does.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: anchors 1–1000 (default 100), events 1–100 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next_token` of the previous page.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// `limit` within `1..=max`, defaulting to `default`.
pub(crate) fn checked_limit(
    limit: Option<i64>,
    default: usize,
    max: usize,
) -> ServiceResult<usize> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
        Some(n) if n < 1 => Err(ServiceError::invalid_listing(
            "limit",
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        )),
        Some(_) => Err(ServiceError::invalid_listing(
            "limit",
            format!("Input should be less than or equal to {max}"),
            "less_than_equal",
        )),
    }
}

/// Sessions at each given step of one scenario version, from the store's
/// session counts ([`Store::session_counts`]): one read, whatever the number of
/// sessions — never a page of sessions. Returns the counts of those steps and
/// how fresh they are.
pub(crate) async fn count_sessions(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
    steps: impl IntoIterator<Item = Uuid>,
) -> ServiceResult<(SessionCounts, Option<DateTime<Utc>>)> {
    let counts = store.session_counts(tenant, scenario_id, version).await?;
    let wanted: std::collections::BTreeSet<Uuid> = steps.into_iter().collect();
    let by_step = counts
        .by_step
        .into_iter()
        .filter(|(step, _)| wanted.contains(step))
        .collect();
    Ok((by_step, counts.counted_at))
}

pub(crate) async fn generate(
    store: &dyn Store,
    config: &Config,
    permits: &tokio::sync::Semaphore,
    tenant: Uuid,
    scenario_id: Uuid,
    request: GenerateMigrationPlanRequest,
    now: DateTime<Utc>,
) -> ServiceResult<MigrationPlan> {
    let current = store
        .get_current_scenario(tenant, scenario_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Scenario", scenario_id))?;
    validated(&request.new_scenario, &["new_scenario"])?;
    // One rollout at a time leaves a version: a plan from it could never deploy.
    if let Some(rollout) = store
        .get_scenario_head(tenant, scenario_id)
        .await?
        .and_then(|head| head.rollout)
    {
        return Err(ServiceError::Conflict(format!(
            "Plan {} is rolled out to {}% of this scenario's sessions; ramp it to 100% before planning the next version",
            rollout.plan_id, rollout.percent
        )));
    }
    // A version stored already (a withdrawn plan's) keeps its definition:
    // sessions migrated to it stay there.
    if request.new_scenario.version > current.version
        && store
            .get_scenario_version(tenant, scenario_id, request.new_scenario.version)
            .await?
            .is_some()
    {
        return Err(ServiceError::Conflict(format!(
            "Version {} exists already (a withdrawn rollout's); plan a higher version",
            request.new_scenario.version
        )));
    }
    if request.new_scenario.version <= current.version {
        return Err(ServiceError::Conflict(format!(
            "New version {} must be greater than the current version {}",
            request.new_scenario.version, current.version
        )));
    }
    // Cheap refusals before the expensive part: a live plan for this version
    // pair means the diff would be computed only to be thrown away.
    if let Some(live) = live_plan_for_pair(
        store,
        tenant,
        scenario_id,
        current.version,
        request.new_scenario.version,
    )
    .await?
    {
        return Err(ServiceError::Conflict(format!(
            "A live migration plan ({live}) already exists for versions {} -> {}",
            current.version, request.new_scenario.version
        )));
    }
    // Large diffs hold hundreds of MB while they run: at most `PLAN_CONCURRENCY`
    // at once per process, the others wait their turn.
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| ServiceError::Unavailable("shutting down".into()))?;
    // Again after the wait: identical requests sent together all passed the
    // first check; only the first to get a permit should pay for the diff.
    if let Some(live) = live_plan_for_pair(
        store,
        tenant,
        scenario_id,
        current.version,
        request.new_scenario.version,
    )
    .await?
    {
        return Err(ServiceError::Conflict(format!(
            "A live migration plan ({live}) already exists for versions {} -> {}",
            current.version, request.new_scenario.version
        )));
    }
    let v1 = current.definition();
    let (counts, counted_at) = count_sessions(
        store,
        tenant,
        scenario_id,
        current.version,
        v1.steps.iter().map(|s| s.id),
    )
    .await?;
    // CPU-bound for large scenarios: off the async workers, so other requests
    // keep being served while it runs.
    let new_scenario = request.new_scenario;
    let (computed, new_scenario) = tokio::task::spawn_blocking(move || {
        let computed = compute_plan(&v1, &new_scenario, &counts);
        (computed, new_scenario)
    })
    .await
    .map_err(|e| ServiceError::Unexpected(format!("plan computation failed: {e}")))?;
    let target = version_from_input(tenant, scenario_id, new_scenario, now);
    let plan = MigrationPlan {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        scenario_id,
        scenario_name: target.name.clone(),
        from_version: current.version,
        to_version: target.version,
        scenario_checksum_v1: computed.scenario_checksum_v1,
        scenario_checksum_v2: computed.scenario_checksum_v2,
        transformation_map: computed.transformation_map,
        anchor_policies: computed.anchor_policies,
        summary: planning::MigrationSummary {
            sessions_counted_at: counted_at,
            ..computed.summary
        },
        status: PlanStatus::Pending,
        created_at: now,
        created_by: request.created_by,
        approved_at: None,
        approved_by: None,
        rejected_at: None,
        rejected_by: None,
        rejection_reason: None,
        deployed_at: None,
        expires_at: Some(now + Duration::days(config.plan_ttl_days)),
        paused_from: None,
        guard: None,
        halt_reason: None,
        percent: None,
        rollout_pass: 0,
        transitions: Vec::new(),
        revision: 1,
    };
    let mut created = store.create_plan(&plan, &target).await;
    if matches!(created, Err(StoreError::Conflict(_)))
        && live_plan_for_pair(
            store,
            tenant,
            scenario_id,
            plan.from_version,
            plan.to_version,
        )
        .await?
        .is_none()
    {
        // The plan holding the pair expired meanwhile (expired on the way): free now.
        created = store.create_plan(&plan, &target).await;
    }
    match created {
        Ok(()) => Ok(plan),
        Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
            "A live migration plan already exists for versions {} -> {}",
            plan.from_version, plan.to_version
        ))),
        Err(e) => Err(e.into()),
    }
}

/// A plan as it stands now: a pending or approved plan past its `expires_at` is
/// moved to `expired` on the way (a conditional transition), so it reads as
/// expired everywhere, can no longer be approved or deployed, and frees its
/// version pair.
pub(crate) async fn load(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<MigrationPlan> {
    let now = Utc::now();
    for _ in 0..3 {
        let plan = store
            .get_plan(tenant, plan_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Migration plan", plan_id))?;
        // Past its `expires_at`, and still in a status that expires.
        let expiry = plan
            .expires_at
            .is_some_and(|at| at <= now)
            .then(|| lifecycle::transition(plan.status, PlanCommand::Expire, now).ok())
            .flatten();
        let Some(change) = expiry else {
            return Ok(plan);
        };
        let expired = store
            .transition_plan(&PlanTransition {
                tenant,
                plan_id,
                expected_revision: plan.revision,
                change,
                rollout: None,
            })
            .await;
        match expired {
            Ok(plan) => return Ok(plan),
            // Changed meanwhile (approved, rejected, expired by another call): read again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Conflict(
        "Migration plan changed concurrently; retry".into(),
    ))
}

/// [`load`] without the plan's transformation map, summary and policies (left
/// empty): one small read whatever the plan's size, for status, events and the
/// existence checks of other reads. A plan due to expire is expired on the way.
pub(crate) async fn load_header(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<MigrationPlan> {
    let header = store
        .get_plan_header(tenant, plan_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Migration plan", plan_id))?;
    let due = header.expires_at.is_some_and(|at| at <= Utc::now())
        && lifecycle::check(header.status, &PlanCommand::Expire).is_ok();
    if !due {
        return Ok(header);
    }
    Ok(store::plan_header(&load(store, tenant, plan_id).await?))
}

/// Every plan of a scenario with one of `statuses`, following the listing's
/// pages (a scenario has few plans; this serves lookups, not listings).
pub(crate) async fn plans_of(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    statuses: &[PlanStatus],
) -> ServiceResult<Vec<planning::MigrationPlanSummaryItem>> {
    let mut found = Vec::new();
    for status in statuses {
        let mut next_token = None;
        loop {
            let page = store
                .list_plans(&PlanQuery {
                    tenant,
                    scenario_id: Some(scenario_id),
                    status: Some(*status),
                    limit: 100,
                    next_token: next_token.take(),
                })
                .await?;
            found.extend(page.plans);
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => break,
            }
        }
    }
    Ok(found)
}

/// A pending or approved plan that holds the version pair `from → to`; plans
/// past their `expires_at` are expired on the way and do not count.
async fn live_plan_for_pair(
    store: &dyn Store,
    tenant: Uuid,
    scenario_id: Uuid,
    from: i64,
    to: i64,
) -> ServiceResult<Option<Uuid>> {
    let candidates = plans_of(
        store,
        tenant,
        scenario_id,
        &[PlanStatus::Pending, PlanStatus::Approved],
    )
    .await?;
    for item in candidates {
        if item.from_version == from
            && item.to_version == to
            && load_header(store, tenant, item.id).await?.status.is_live()
        {
            return Ok(Some(item.id));
        }
    }
    Ok(None)
}

pub(crate) async fn list(
    store: &dyn Store,
    tenant: Uuid,
    query: ListPlansQuery,
) -> ServiceResult<PlanList> {
    let limit = checked_limit(query.limit, 50, 100)?;
    if let (Some(a), Some(b)) = (query.plan_status, query.status)
        && a != b
    {
        return Err(ServiceError::invalid_listing(
            "status",
            "plan_status and status name the same filter; they must agree",
            "value_error.conflict",
        ));
    }
    let PlanPage {
        plans,
        total,
        next_token,
    } = store
        .list_plans(&PlanQuery {
            tenant,
            scenario_id: query.scenario_id,
            status: query.plan_status.or(query.status),
            limit,
            next_token: query.next_token,
        })
        .await?;
    Ok(PlanList {
        plans,
        total,
        next_token,
    })
}

pub(crate) async fn summary(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<MigrationSummary> {
    // The summary is stored apart: this never loads the transformation map.
    store
        .get_plan_summary(tenant, plan_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Migration plan", plan_id))
}

/// Every problem of `policies` for `plan` (`planning::policy`), located inside
/// the submitted document's `policies`.
fn check_policies(
    plan: &MigrationPlan,
    policies: &BTreeMap<String, AnchorMigrationPolicy>,
) -> ServiceResult<()> {
    planning::policy::validate_policies(&plan.transformation_map, policies).map_err(|issues| {
        ServiceError::Invalid {
            input: Input::Document,
            issues: issues
                .into_iter()
                .map(|issue| Issue::from_validation(&["policies"], issue))
                .collect(),
        }
    })
}

pub(crate) async fn update_policies(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    request: UpdatePoliciesRequest,
) -> ServiceResult<MigrationPlan> {
    let plan = load(store, tenant, plan_id).await?;
    check_policies(&plan, &request.policies)?;
    lifecycle::check(plan.status, &PlanCommand::EditPolicies)?;
    let mut merged = plan.anchor_policies.clone();
    for (hash, mut policy) in request.policies {
        if let Some(anchor) = plan.transformation_map.anchor_by_hash(&hash) {
            policy.anchor_name = anchor.anchor_name.clone();
        }
        merged.insert(hash, policy);
    }
    store
        .update_plan_policies(tenant, plan_id, plan.revision, &merged)
        .await
        .map_err(conflict_as("Plan changed concurrently; reload it"))
}

fn conflict_as(message: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::Conflict(_) => ServiceError::Conflict(message.into()),
        other => other.into(),
    }
}

pub(crate) async fn approve(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    request: ApprovePlanRequest,
    now: DateTime<Utc>,
) -> ServiceResult<MigrationPlan> {
    let plan = load(store, tenant, plan_id).await?;
    let change = lifecycle::transition(
        plan.status,
        PlanCommand::Approve {
            by: request.approved_by,
        },
        now,
    )?;
    if plan.expires_at.is_some_and(|at| at <= now) {
        return Err(ServiceError::Conflict(
            "Plan expired; generate a new one".into(),
        ));
    }
    store
        .transition_plan(&PlanTransition {
            tenant,
            plan_id,
            expected_revision: plan.revision,
            change,
            rollout: None,
        })
        .await
        .map_err(conflict_as(
            "Plan changed concurrently; it is no longer pending",
        ))
}

pub(crate) async fn reject(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    request: RejectPlanRequest,
    now: DateTime<Utc>,
) -> ServiceResult<MigrationPlan> {
    let plan = load(store, tenant, plan_id).await?;
    let change = lifecycle::transition(
        plan.status,
        PlanCommand::Reject {
            by: request.rejected_by,
            reason: request.reason,
        },
        now,
    )?;
    store
        .transition_plan(&PlanTransition {
            tenant,
            plan_id,
            expected_revision: plan.revision,
            change,
            rollout: None,
        })
        .await
        .map_err(conflict_as(
            "Plan changed concurrently; it is no longer pending",
        ))
}
