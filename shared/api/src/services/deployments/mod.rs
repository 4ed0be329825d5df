//! Deploy (activation + marking) and deployment status.
//!
//! `deploy`, `ramp`, `status` and the answers they give are here; the rollout
//! commands (pause, resume, withdraw) and guard enforcement are in [`rollout`];
//! marking's walk (chains, probes, dispatch, resumption, the sweep) in [`walk`].

mod rollout;
mod walk;

use chrono::{DateTime, Utc};
use planning::lifecycle::{self, PlanCommand};
use planning::{
    DeployRequest, DeploymentResult, DeploymentStatus, MigrationPlan, MigrationsByScenario,
    PlanStatus,
};
use store::{
    ActivationError, PlanActivation, PlanStats, PlanTransition, RolloutMove, Store, StoreError,
};
use uuid::Uuid;

use super::Deps;
use crate::services::error::{Input, Issue, ServiceError, ServiceResult};
use crate::services::plans::{load, load_header, plans_of};

pub use rollout::RolloutCommandRequest;
use rollout::actor_problem;
pub(crate) use rollout::{enforce_guard, enforce_guard_of, pause, resume_rollout, withdraw};
#[cfg(feature = "local")]
pub use walk::sweep_forever;
pub use walk::{SweepReport, sweep};
use walk::{mark, resume};

/// A deployment answer: `finished` is false while marking fans out (HTTP 202).
pub(crate) struct DeployOutcome {
    pub result: DeploymentResult,
    pub finished: bool,
}

fn result_of(plan: &MigrationPlan, stats: &PlanStats) -> DeploymentResult {
    DeploymentResult {
        plan_id: plan.id,
        status: plan.status,
        sessions_marked: stats.sessions_marked,
        sessions_by_anchor: stats.sessions_by_anchor.clone(),
        deployed_at: plan.deployed_at,
        percent: plan.rollout_percent(),
    }
}

pub(crate) async fn deploy(
    state: &Deps,
    tenant: Uuid,
    plan_id: Uuid,
    request: DeployRequest,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    let mut issues: Vec<Issue> = request
        .guard
        .iter()
        .flat_map(planning::guard::problems)
        .map(|(field, message)| Issue::new(&["guard", field], message, "value_error"))
        .collect();
    if request.percent.is_some_and(|p| !(1..=100).contains(&p)) {
        issues.push(Issue::new(
            &["percent"],
            "percent must be a whole number from 1 to 100",
            "value_error.number.range",
        ));
    }
    issues.extend(actor_problem(request.by.as_deref()));
    if !issues.is_empty() {
        return Err(ServiceError::Invalid {
            input: Input::Document,
            issues,
        });
    }
    let percent = request.percent.unwrap_or(100);
    let store = state.store();
    // The header is enough to decide; activation returns the whole plan.
    let plan = load_header(store, tenant, plan_id).await?;
    match plan.status {
        // Again while deploying: resume whatever stalled, then report progress.
        // A wider percent waits until this pass is marked.
        PlanStatus::Deploying => {
            if request.percent.is_some_and(|p| p != plan.rollout_percent()) {
                return Err(ServiceError::Conflict(format!(
                    "Plan is deploying at {}%; ramp once it is deployed",
                    plan.rollout_percent()
                )));
            }
            return resume(state, plan, now).await;
        }
        PlanStatus::Deployed => return ramp(state, plan, &request, now).await,
        // Only approved plans deploy (`planning::lifecycle`): else 409.
        status => lifecycle::check(status, &PlanCommand::Deploy)?,
    }
    let target = store
        .get_plan_target(tenant, plan_id)
        .await?
        .ok_or_else(|| {
            ServiceError::Unexpected("approved plan without its target version".into())
        })?;
    let activation = PlanActivation {
        tenant,
        plan_id,
        expected_revision: plan.revision,
        scenario_id: plan.scenario_id,
        from_version: plan.from_version,
        target,
        at: now,
        guard: request.guard,
        percent,
        by: request.by,
    };
    let plan = match store.activate_plan(&activation).await {
        Ok(plan) => plan,
        Err(ActivationError::ScenarioMoved) => {
            supersede(store, &plan, now).await?;
            return Err(ActivationError::ScenarioMoved.into());
        }
        Err(e) => return Err(e.into()),
    };
    supersede_siblings(store, &plan, now).await?;
    mark(state, plan, now).await
}

/// `POST …/deploy` on a plan deployed at a smaller percent: widen its cohort.
/// One conditional write moves the plan back to `deploying` at the new percent
/// (a new marking pass) together with the scenario: the partial rollout it
/// records widens, or at 100% the plan's version becomes current. Then the new
/// pass marks the sessions the wider cohort adds; sessions flagged or migrated
/// by an earlier pass are left as they are (a flag is set only where none is).
async fn ramp(
    state: &Deps,
    plan: MigrationPlan,
    request: &DeployRequest,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    let current = plan.rollout_percent();
    let Some(percent) = request.percent.filter(|p| *p > current) else {
        return Err(ServiceError::Conflict(format!(
            "Plan is deployed at {current}%; only a larger percent ramps it"
        )));
    };
    if request.guard.is_some() {
        return Err(ServiceError::Invalid {
            input: Input::Document,
            issues: vec![Issue::new(
                &["guard"],
                "a rollout's guard is given when it is first deployed; ramp with percent alone",
                "value_error",
            )],
        });
    }
    let store = state.store();
    let command = PlanCommand::Ramp {
        percent,
        pass: plan.rollout_pass + 1,
    };
    let change = lifecycle::transition(plan.status, command, now)?.by(request.by.clone());
    let transition = PlanTransition {
        tenant: plan.tenant_id,
        plan_id: plan.id,
        expected_revision: plan.revision,
        change,
        rollout: Some(RolloutMove {
            scenario_id: plan.scenario_id,
            from_version: plan.from_version,
            to_version: plan.to_version,
            percent,
            withdraw: false,
        }),
    };
    match store.transition_plan(&transition).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(
                "Migration plan changed concurrently; read it and retry".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(plan_id = %plan.id, from = current, to = percent, "rollout ramped");
    let plan = load(store, plan.tenant_id, plan.id).await?;
    mark(state, plan, now).await
}

/// Mark the plan itself superseded (its scenario moved on without it).
async fn supersede(
    store: &dyn Store,
    plan: &MigrationPlan,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    // A plan no longer pending or approved has nothing left to supersede.
    let Ok(change) = lifecycle::transition(plan.status, PlanCommand::Supersede, now) else {
        return Ok(());
    };
    let change = PlanTransition {
        tenant: plan.tenant_id,
        plan_id: plan.id,
        expected_revision: plan.revision,
        change,
        rollout: None,
    };
    match store.transition_plan(&change).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Other live plans from the same version can never deploy now.
async fn supersede_siblings(
    store: &dyn Store,
    deployed: &MigrationPlan,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let live = plans_of(
        store,
        deployed.tenant_id,
        deployed.scenario_id,
        &[PlanStatus::Pending, PlanStatus::Approved],
    )
    .await?;
    for item in live {
        if item.id == deployed.id || item.from_version != deployed.from_version {
            continue;
        }
        if let Some(sibling) = store.get_plan(deployed.tenant_id, item.id).await? {
            supersede(store, &sibling, now).await?;
        }
    }
    Ok(())
}

async fn progress(store: &dyn Store, tenant: Uuid, plan_id: Uuid) -> ServiceResult<DeployOutcome> {
    let plan = load_header(store, tenant, plan_id).await?;
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    Ok(DeployOutcome {
        finished: matches!(plan.status, PlanStatus::Deployed | PlanStatus::Withdrawn),
        result: result_of(&plan, &stats),
    })
}

pub(crate) async fn status(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<DeploymentStatus> {
    // Status and counters only: never the plan's body.
    let plan = load_header(store, tenant, plan_id).await?;
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    let now = Utc::now();
    let per_minute = store
        .applied_per_minute(tenant, plan_id, planning::drain::window_start(now))
        .await?;
    let pending = stats.migrations_pending();
    let quiet_days = store.pending_by_activity_day(tenant, plan_id).await?;
    Ok(DeploymentStatus {
        plan_id,
        status: plan.status,
        percent: plan.rollout_percent(),
        sessions_marked: stats.sessions_marked,
        // Counted apart so that applied never exceeds marked: a session reconciled
        // without a flag was never part of `sessions_marked`.
        migrations_applied: stats.flagged_applied,
        migrations_pending: pending,
        flags_withdrawn: stats.flags_withdrawn,
        migrations_applied_unflagged: stats
            .migrations_applied
            .saturating_sub(stats.flagged_applied),
        migrations_by_scenario: MigrationsByScenario {
            clean_graft: stats.clean_graft,
            gap_fill: stats.gap_fill,
            re_route: stats.re_route,
        },
        checkpoint_blocks: stats.checkpoint_blocks,
        migrations_exited: stats.exits,
        reported_outcomes: stats.reported_outcomes,
        reported_failures: stats.reported_failures,
        guard: plan.guard,
        halt_reason: plan.halt_reason,
        deployed_at: plan.deployed_at,
        last_migration_at: stats.last_migration_at,
        pages_failed: stats.pages_failed,
        last_progress_at: stats.last_progress_at,
        resumptions: stats.resumptions,
        drain: planning::Drain {
            pending_by_last_activity: planning::drain::pending_by_last_activity(&quiet_days, now),
            ..planning::drain::drain(plan.status, pending, &per_minute, now)
        },
    })
}
