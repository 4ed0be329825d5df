//! The rollout commands on a deployed or deploying plan — pause, resume,
//! withdraw — and the guard that halts a rollout: each one conditional write
//! on the plan, retried when marking moved it in between.

use chrono::{DateTime, Utc};
use planning::lifecycle::{self, PlanCommand};
use planning::{DeploymentStatus, MigrationPlan, PlanStatus};
use store::{PlanTransition, Store, StoreError};
use uuid::Uuid;

use super::walk::{Takeover, mark, resume, resume_chains};
use super::{DeployOutcome, progress, status};
use crate::services::Deps;
use crate::services::error::{Input, Issue, ServiceError, ServiceResult};
use crate::services::plans::{load, load_header};

/// Transitions a pause or resume tries before giving up with a 409: each lost
/// race is marking finishing (`deploying` → `deployed`) in between.
const ROLLOUT_TRANSITION_ATTEMPTS: usize = 4;

/// The optional body of `POST …/pause`, `…/resume` and `…/withdraw`.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutCommandRequest {
    /// Who asks, for the plan's history (`transitions`); at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub by: Option<String>,
}

/// A `by` field the plan's history cannot keep as given: 422 rather than cut.
pub(crate) fn actor_problem(by: Option<&str>) -> Option<Issue> {
    by.filter(|by| by.chars().count() > planning::MAX_ACTOR_CHARS)
        .map(|_| {
            Issue::new(
                &["by"],
                format!(
                    "by must be at most {} characters",
                    planning::MAX_ACTOR_CHARS
                ),
                "value_error.any_str.max_length",
            )
        })
}

/// Checked where an operator's command comes in, before anything is read.
fn check_actor(by: Option<&str>) -> ServiceResult<()> {
    match actor_problem(by) {
        Some(issue) => Err(ServiceError::Invalid {
            input: Input::Document,
            issues: vec![issue],
        }),
        None => Ok(()),
    }
}

/// Store `command`'s transition on the plan as it is now, reading again when
/// marking moved it in between; `None` from `command` means nothing is to be
/// done to the plan as it is (`Ok(None)`). Refusals (409) come from
/// `planning::lifecycle`.
async fn transition_rollout(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    command: impl Fn(&MigrationPlan) -> Option<PlanCommand>,
    now: DateTime<Utc>,
    by: Option<String>,
) -> ServiceResult<Option<MigrationPlan>> {
    for _ in 0..ROLLOUT_TRANSITION_ATTEMPTS {
        let plan = load_header(store, tenant, plan_id).await?;
        let Some(command) = command(&plan) else {
            return Ok(None);
        };
        let change = lifecycle::transition(plan.status, command, now)?.by(by.clone());
        match store
            .transition_plan(&PlanTransition {
                tenant,
                plan_id,
                expected_revision: plan.revision,
                change,
                rollout: None,
            })
            .await
        {
            Ok(plan) => return Ok(Some(store::plan_header(&plan))),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Conflict(
        "Migration plan changed concurrently; retry".into(),
    ))
}

/// `POST …/pause`: marking and applying stop in one conditional write on the
/// plan. Reconcile checks the plan's status inside its own atomic write, so no
/// migration is applied after this returns; marking stops at its next page.
/// Flags stay on their sessions.
pub(crate) async fn pause(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
    by: Option<String>,
) -> ServiceResult<DeploymentStatus> {
    check_actor(by.as_deref())?;
    transition_rollout(
        store,
        tenant,
        plan_id,
        |_| Some(PlanCommand::Pause),
        now,
        by,
    )
    .await?;
    status(store, tenant, plan_id).await
}

/// `POST …/resume`: back to the status the plan was paused in. A plan paused
/// while deploying takes up every unfinished marking chain at once (no lease to
/// wait for: the pause stopped them) from where its ledger stands.
pub(crate) async fn resume_rollout(
    state: &Deps,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
    by: Option<String>,
) -> ServiceResult<DeployOutcome> {
    check_actor(by.as_deref())?;
    let plan = transition_rollout(
        state.store(),
        tenant,
        plan_id,
        |plan| {
            Some(PlanCommand::Resume {
                to: plan.paused_from.unwrap_or(PlanStatus::Deploying),
            })
        },
        now,
        by,
    )
    .await?;
    if let Some(plan) = plan.filter(|plan| plan.status == PlanStatus::Deploying) {
        return resume_chains(state, plan, now, Takeover::Unfinished).await;
    }
    progress(state.store(), tenant, plan_id).await
}

/// `POST …/withdraw`: take the rollout back. One conditional write moves the
/// plan to `withdrawing` (from `deploying`, `deployed`, `paused` or `halted`),
/// after which reconcile applies none of its migrations (every migration's
/// write checks the plan applies); then a pass of chains over every step of
/// the from-version clears each flag of the plan still there, through the same
/// paged, ledgered, resumable walk as marking. The last chain's end moves the
/// plan to `withdrawn` and gives the scenario its from-version back. Sessions
/// already migrated stay. Called again while withdrawing: resumes whatever
/// stalled and reports progress.
pub(crate) async fn withdraw(
    state: &Deps,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
    by: Option<String>,
) -> ServiceResult<DeployOutcome> {
    check_actor(by.as_deref())?;
    let store = state.store();
    let header = load_header(store, tenant, plan_id).await?;
    if header.status == PlanStatus::Withdrawing {
        return resume(state, header, now).await;
    }
    transition_rollout(
        store,
        tenant,
        plan_id,
        |plan| {
            Some(PlanCommand::Withdraw {
                pass: plan.rollout_pass + 1,
            })
        },
        now,
        by,
    )
    .await?;
    tracing::warn!(%tenant, %plan_id, "rollout withdrawn: clearing its unapplied flags");
    let plan = load(store, tenant, plan_id).await?;
    mark(state, plan, now).await
}

/// Halt the plan if its guard's thresholds are crossed by its counters now:
/// called after each migration applied under a guard. The halt is one
/// conditional write (lost races re-read; a plan already stopped stays as it is),
/// and every later migration's own write checks it, so none is applied after it.
/// `true` when this call halted it (its caller announces the halt).
pub(crate) async fn enforce_guard(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    guard: &planning::RolloutGuard,
    now: DateTime<Utc>,
) -> ServiceResult<bool> {
    // The counters only: this runs after every guarded migration.
    let stats = store.get_plan_counters(tenant, plan_id).await?;
    let figures = planning::guard::GuardFigures {
        applied: stats.migrations_applied,
        exits: stats.exits,
        checkpoint_blocks: stats.checkpoint_blocks,
        reported_failures: stats.reported_failures,
    };
    let Some(reason) = planning::guard::crossed(guard, &figures) else {
        return Ok(false);
    };
    // A plan already stopped (halted by a concurrent reconcile, paused) stays as it is.
    let halted = transition_rollout(
        store,
        tenant,
        plan_id,
        |plan| {
            plan.status.applies_migrations().then(|| PlanCommand::Halt {
                reason: reason.clone(),
            })
        },
        now,
        None,
    )
    .await?;
    if halted.is_some() {
        crate::metrics::rollout_halted();
        tracing::warn!(%tenant, %plan_id, reason = %reason, "rollout halted by its guard");
    }
    Ok(halted.is_some())
}

/// [`enforce_guard`] for a plan known by id only (after a reported failure):
/// its header says whether it has a guard. Failures are logged, not the
/// caller's — the report is counted, and the next one checks again.
pub(crate) async fn enforce_guard_of(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
) -> bool {
    let checked = async {
        let Some(plan) = store.get_plan_header(tenant, plan_id).await? else {
            return Ok(false);
        };
        match &plan.guard {
            Some(guard) if plan.status.applies_migrations() => {
                enforce_guard(store, tenant, plan_id, guard, now).await
            }
            _ => Ok(false),
        }
    };
    checked.await.unwrap_or_else(|error: ServiceError| {
        tracing::error!(%error, %plan_id, "could not check the rollout guard");
        false
    })
}
