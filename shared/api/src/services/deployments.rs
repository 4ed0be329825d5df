//! Deploy (activation + marking) and deployment status.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use planning::lifecycle::{self, PlanCommand};
use planning::{
    DeployRequest, DeploymentResult, DeploymentStatus, MigrationPlan, MigrationsByScenario,
    PlanStatus,
};
use store::{
    ActivationError, ChainStart, PlanActivation, PlanStats, PlanTransition, RolloutMove, StepQuery,
    Store, StoreError,
};
use uuid::Uuid;

use super::Deps;
use crate::marking::{self, Chain, MarkMessage, MarkingContext};
use crate::services::error::{Input, Issue, ServiceError, ServiceResult};
use crate::services::plans::{load, load_header, plans_of};

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
    let change = lifecycle::transition(plan.status, command, now)?;
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

/// Transitions a pause or resume tries before giving up with a 409: each lost
/// race is marking finishing (`deploying` → `deployed`) in between.
const ROLLOUT_TRANSITION_ATTEMPTS: usize = 4;

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
) -> ServiceResult<Option<MigrationPlan>> {
    for _ in 0..ROLLOUT_TRANSITION_ATTEMPTS {
        let plan = load_header(store, tenant, plan_id).await?;
        let Some(command) = command(&plan) else {
            return Ok(None);
        };
        let change = lifecycle::transition(plan.status, command, now)?;
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
) -> ServiceResult<DeploymentStatus> {
    transition_rollout(store, tenant, plan_id, |_| Some(PlanCommand::Pause), now).await?;
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
) -> ServiceResult<DeployOutcome> {
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
) -> ServiceResult<DeployOutcome> {
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
pub(crate) async fn enforce_guard(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    guard: &planning::RolloutGuard,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    let figures = planning::guard::GuardFigures {
        applied: stats.migrations_applied,
        exits: stats.exits,
        checkpoint_blocks: stats.checkpoint_blocks,
        reported_failures: stats.reported_failures,
    };
    let Some(reason) = planning::guard::crossed(guard, &figures) else {
        return Ok(());
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
    )
    .await?;
    if halted.is_some() {
        tracing::warn!(%tenant, %plan_id, reason = %reason, "rollout halted by its guard");
    }
    Ok(())
}

/// [`enforce_guard`] for a plan known by id only (after a reported failure):
/// its header says whether it has a guard. Failures are logged, not the
/// caller's — the report is counted, and the next one checks again.
pub(crate) async fn enforce_guard_of(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
) {
    let checked = async {
        let Some(plan) = store.get_plan_header(tenant, plan_id).await? else {
            return Ok(());
        };
        match &plan.guard {
            Some(guard) if plan.status.applies_migrations() => {
                enforce_guard(store, tenant, plan_id, guard, now).await
            }
            _ => Ok(()),
        }
    };
    if let Err(error) = checked.await {
        tracing::error!(%error, %plan_id, "could not check the rollout guard");
    }
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

/// Marking from the start: right after activation, or when a deploy died
/// between activation and the start of marking.
async fn mark(
    state: &Deps,
    plan: MigrationPlan,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    let store = state.store();
    let config = state.config();
    // One chain per (step, shard of the step index): the shards of a step are
    // marked in parallel. The shard count is the store's now, recorded on
    // every chain, so resumptions walk the same shards whatever changes later.
    let shards = store.step_index_shards();
    // Each pass (the deploy's, then one per ramp) walks every chain again,
    // marking the cohort of its percent.
    let (pass, percent) = (plan.rollout_pass, plan.rollout_percent());
    let withdraw = plan.status == PlanStatus::Withdrawing;
    let steps = if withdraw {
        withdrawal_chains(store, &plan).await?
    } else {
        marking::chains_of(&plan)
    };
    let sharded = steps
        .into_iter()
        .flat_map(|chain| chain.sharded(shards))
        .map(|chain| Chain {
            pass,
            percent: if withdraw { 100 } else { percent },
            withdraw,
            ..chain
        })
        .collect();
    // Only chains with sessions become work; inline vs fan-out reads the
    // session counts — a deployment's sessions are never paged inside this call.
    let (chains, fan_out) = probe_chains(
        store,
        &plan,
        sharded,
        config.inline_mark_threshold,
        config.count_concurrency,
    )
    .await?;
    let starts: Vec<ChainStart> = chains
        .iter()
        .map(|c| ChainStart {
            step_id: c.step_id,
            shard: c.shard,
            shards: c.shards,
            anchor_content_hash: c.anchor_content_hash.clone(),
            pass,
            percent,
        })
        .collect();
    if !store
        .start_marking(plan.tenant_id, plan.id, pass, &starts, now)
        .await?
    {
        // Another call started it meanwhile; its walk goes on (202 here).
        let mut outcome = progress(store, plan.tenant_id, plan.id).await?;
        outcome.finished = false;
        return Ok(outcome);
    }
    let work = chains.into_iter().map(|chain| (chain, None)).collect();
    dispatch(state, &plan, work, fan_out, now).await
}

/// A withdrawal walks every step of the from-version: a flagged session may
/// have been moved by its runtime to any step since it was marked.
async fn withdrawal_chains(store: &dyn Store, plan: &MigrationPlan) -> ServiceResult<Vec<Chain>> {
    let v1 = store
        .get_scenario_version(plan.tenant_id, plan.scenario_id, plan.from_version)
        .await?
        .ok_or_else(|| ServiceError::Unexpected("plan's from-version is missing".into()))?;
    Ok(v1
        .steps
        .iter()
        .map(|step| Chain {
            step_id: step.id,
            shard: 0,
            shards: 1,
            anchor_content_hash: None,
            pass: 0,
            percent: 100,
            withdraw: true,
        })
        .collect())
}

/// Resume a deploying plan (its header is enough; the body is read only when
/// there is marking to do): start marking if it never started, else take over
/// every chain whose lease ran out (no page recorded for `DEPLOY_LEASE_SECONDS`)
/// and walk it on from where the ledger says it stands — through the queue when
/// there is one. Recording is conditional on the chain's position, so a walk
/// that was only slow, not dead, and its resumption never both count a page.
pub(crate) async fn resume(
    state: &Deps,
    plan: MigrationPlan,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    resume_chains(state, plan, now, Takeover::Stalled).await
}

/// Which marking chains a resumption takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takeover {
    /// Those whose lease ran out (a process died, a store error).
    Stalled,
    /// Every unfinished one: after a pause, which stopped them all.
    Unfinished,
}

async fn resume_chains(
    state: &Deps,
    plan: MigrationPlan,
    now: DateTime<Utc>,
    takeover: Takeover,
) -> ServiceResult<DeployOutcome> {
    let store = state.store();
    let stats = store.get_plan_stats(plan.tenant_id, plan.id).await?;
    if stats.marking_started_at.is_none() || stats.marking_pass < plan.rollout_pass {
        tracing::warn!(plan_id = %plan.id, "deploy stopped before marking started; starting it");
        let plan = load(store, plan.tenant_id, plan.id).await?;
        return mark(state, plan, now).await;
    }
    let lease = chrono::Duration::seconds(
        i64::try_from(state.config().deploy_lease_seconds).unwrap_or(i64::MAX),
    );
    let mut work = Vec::new();
    let withdraw = plan.status == PlanStatus::Withdrawing;
    for chain in store.list_chains(plan.tenant_id, plan.id).await? {
        // Only the current pass walks: a withdrawal leaves the marking it cut short.
        if chain.pass != plan.rollout_pass {
            continue;
        }
        let stalled = !chain.done
            && (takeover == Takeover::Unfinished
                || now.signed_duration_since(chain.updated_at) >= lease);
        if !stalled || chain.resumptions >= state.config().deploy_max_resumptions {
            continue;
        }
        if store
            .claim_chain(plan.tenant_id, plan.id, chain.key(), chain.updated_at, now)
            .await?
        {
            tracing::warn!(
                plan_id = %plan.id,
                step_id = %chain.step_id,
                shard = chain.shard,
                resumptions = chain.resumptions + 1,
                "resuming a marking chain that made no progress"
            );
            crate::metrics::page_resumed();
            let position = Chain {
                step_id: chain.step_id,
                shard: chain.shard,
                shards: chain.shards,
                anchor_content_hash: chain.anchor_content_hash,
                pass: chain.pass,
                percent: chain.percent,
                withdraw,
            };
            work.push((position, chain.cursor));
        }
    }
    if work.is_empty() {
        // Nothing stalled: progress (202), unless this very call is the one that
        // found every chain done and finished the deployment.
        let finished_here = marking::finish_if_complete(store, plan.tenant_id, plan.id, now)
            .await?
            .is_some();
        let mut outcome = progress(store, plan.tenant_id, plan.id).await?;
        outcome.finished = finished_here;
        return Ok(outcome);
    }
    // A resumption never walks a large chain inside someone's request.
    let fan_out = state.queue().is_some();
    // Marking needs the policies: the whole plan, read only now there is work.
    let plan = load(store, plan.tenant_id, plan.id).await?;
    dispatch(state, &plan, work, fan_out, now).await
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub plans_deploying: usize,
    pub plans_finished: usize,
    pub plans_failed: usize,
    /// Items past their retention deleted by stores without native expiry.
    pub items_expired: u64,
}

/// Deploying plans a sweep looks at, at most.
const SWEEP_PLANS: usize = 1_000;
/// Expired items one sweep deletes at most (the next sweep goes on).
const SWEEP_EXPIRED: usize = 10_000;

/// Resume every deploying plan that needs it, across tenants: what the
/// periodic schedule (EventBridge on AWS, a timer in `migrations serve`) runs.
/// One plan's failure is logged and does not stop the others.
pub async fn sweep(state: &Deps, now: DateTime<Utc>) -> ServiceResult<SweepReport> {
    let store = state.store();
    let mut report = SweepReport {
        items_expired: store.sweep_expired(now, SWEEP_EXPIRED).await?,
        ..SweepReport::default()
    };
    for (tenant, plan_id) in store.list_deploying(SWEEP_PLANS).await? {
        // Every minute, for every deploying plan: the header, never the body.
        let Some(plan) = store.get_plan_header(tenant, plan_id).await? else {
            continue;
        };
        if !plan.status.walks_chains() {
            continue;
        }
        report.plans_deploying += 1;
        match resume(state, plan, now).await {
            Ok(outcome) if outcome.finished => report.plans_finished += 1,
            Ok(_) => {}
            Err(error) => {
                report.plans_failed += 1;
                tracing::error!(%error, %plan_id, "sweep could not resume a deployment");
            }
        }
    }
    Ok(report)
}

#[cfg(feature = "local")]
/// Sweep every `DEPLOY_SWEEP_SECONDS`, for the life of the process
/// (`migrations serve`; on AWS an EventBridge schedule invokes [`sweep`]). The
/// first sweep runs at start-up, so a deploy cut short by a crash resumes as
/// soon as the process is back and the lease has run out.
pub async fn sweep_forever(state: Deps) {
    let period = std::time::Duration::from_secs(state.config().deploy_sweep_seconds.max(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep(&state, Utc::now()).await {
            Ok(report) if report.plans_deploying > 0 || report.items_expired > 0 => {
                tracing::info!(?report, "deployment sweep");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "deployment sweep failed"),
        }
    }
}

async fn progress(store: &dyn Store, tenant: Uuid, plan_id: Uuid) -> ServiceResult<DeployOutcome> {
    let plan = load_header(store, tenant, plan_id).await?;
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    Ok(DeployOutcome {
        finished: matches!(plan.status, PlanStatus::Deployed | PlanStatus::Withdrawn),
        result: result_of(&plan, &stats),
    })
}

/// Walk chains from the given positions: inline in this call, or as queue
/// messages when `fan_out` and a queue is configured.
async fn dispatch(
    state: &Deps,
    plan: &MigrationPlan,
    work: Vec<(Chain, Option<String>)>,
    fan_out: bool,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    let store = state.store();
    let config = state.config();
    if let (true, Some(queue)) = (fan_out, state.queue()) {
        let messages = work
            .into_iter()
            .map(|(chain, cursor)| MarkMessage {
                tenant_id: plan.tenant_id,
                plan_id: plan.id,
                chain,
                cursor,
            })
            .collect();
        queue.enqueue(messages).await?;
        return progress(store, plan.tenant_id, plan.id).await;
    }

    // Inline: the same pages and ledger as the workers, walked in this call.
    let v1 = store
        .get_scenario_version(plan.tenant_id, plan.scenario_id, plan.from_version)
        .await?
        .ok_or_else(|| ServiceError::Unexpected("plan's from-version is missing".into()))?
        .definition();
    let ctx = MarkingContext::new(
        plan,
        &v1,
        now,
        config.mark_page_size,
        config.mark_concurrency,
    );
    // Chains are independent (each has its own ledger position), so several
    // walk at once: the call waits for the slowest chain, not for their sum.
    let walks: Vec<_> = work
        .into_iter()
        .map(|(chain, cursor)| walk_chain(store, plan, &ctx, chain, cursor, now))
        .collect();
    futures::stream::iter(walks)
        .buffer_unordered(INLINE_CHAINS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    // With no chains at all, nothing triggered completion yet.
    marking::finish_if_complete(store, plan.tenant_id, plan.id, now).await?;
    progress(store, plan.tenant_id, plan.id).await
}

/// Most chains a deploy walks inside its call; more fan out (when a queue is
/// configured).
const INLINE_CHAINS_MAX: usize = 32;

/// Chains an inline deploy walks at once (each with up to `MARK_CONCURRENCY`
/// writes in flight on its page).
const INLINE_CHAINS_AT_ONCE: usize = 8;

/// Walk one chain inline from `cursor`, page after page, recording each page.
async fn walk_chain(
    store: &dyn Store,
    plan: &MigrationPlan,
    ctx: &MarkingContext<'_>,
    chain: Chain,
    mut cursor: Option<String>,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    loop {
        // A pause stops the walk before its next page (resume walks on from
        // the ledger).
        if !marking::still_deploying(store, plan.tenant_id, plan.id, chain.walking_status()).await?
        {
            return Ok(());
        }
        let message = MarkMessage {
            tenant_id: plan.tenant_id,
            plan_id: plan.id,
            chain: chain.clone(),
            cursor: cursor.clone(),
        };
        let outcome = marking::mark_page(store, ctx, &chain, cursor).await?;
        if !marking::record_page(store, plan, &message, &outcome, now).await? {
            // Another walk of this chain is ahead of this one.
            return Ok(());
        }
        match outcome.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// The chains that have sessions (in step, then shard order), and whether more than
/// `threshold` sessions are to be marked. First one read of the store's session
/// counts: only the steps it shows occupied are probed, so a 10,000-step plan
/// with sessions at a handful of steps costs a handful of probes, not one per
/// step and shard. Then one single-session probe per chain of those steps
/// (`concurrency` at a time): no page of sessions is read beyond the probes.
///
/// A session recorded at an empty step within the counters' lag (on DynamoDB,
/// the stream's) is not marked; it migrates as a late arrival on its next
/// reconcile, the scope filter evaluated then, and is counted in
/// `migrations_applied_unflagged`. Counters that never counted (`counted_at`
/// absent) prune nothing.
async fn probe_chains(
    store: &dyn Store,
    plan: &MigrationPlan,
    chains: Vec<Chain>,
    threshold: u64,
    concurrency: usize,
) -> ServiceResult<(Vec<Chain>, bool)> {
    let counted = store
        .session_counts(plan.tenant_id, plan.scenario_id, plan.from_version)
        .await?;
    // Counters that never counted anything (no stream reader on these tables)
    // say nothing about where sessions are: then every chain is probed.
    let occupied = |step: &Uuid| {
        counted.counted_at.is_none() || counted.by_step.get(step).is_some_and(|n| *n > 0)
    };
    let chains: Vec<Chain> = chains
        .into_iter()
        .filter(|chain| occupied(&chain.step_id))
        .collect();
    let query = |chain: &Chain, limit: usize, cursor: Option<String>| StepQuery {
        tenant: plan.tenant_id,
        scenario_id: plan.scenario_id,
        version: plan.from_version,
        step_id: chain.step_id,
        shard: chain.shard,
        limit,
        cursor,
    };
    // Built up front: a mapping closure returning borrowed futures defeats the
    // compiler's `Send` inference for the stream.
    let probes: Vec<_> = chains
        .into_iter()
        .map(|chain| {
            let probe = query(&chain, 1, None);
            async move {
                let page = store.sessions_at_step(&probe).await?;
                Ok::<_, StoreError>((chain, page))
            }
        })
        .collect();
    let mut probed: Vec<(Chain, store::SessionPage)> = futures::stream::iter(probes)
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    probed.retain(|(_, page)| !page.sessions.is_empty());
    probed.sort_by_key(|(chain, _)| (chain.step_id, chain.shard));

    // How many: the counts read above (on DynamoDB they trail the stream by
    // its lag, which can only move a deployment near the threshold between
    // inline and fan-out). Each probe that found a session counts at least one.
    let steps: std::collections::BTreeSet<Uuid> =
        probed.iter().map(|(chain, _)| chain.step_id).collect();
    let counted_total: u64 = counted
        .by_step
        .iter()
        .filter(|(step, _)| steps.contains(step))
        .map(|(_, n)| *n)
        .sum();
    let seen = counted_total.max(probed.len() as u64);
    // Many chains cost the call time whatever their sessions (a claim and a
    // ledger write per page): past `INLINE_CHAINS_MAX` they go to the queue,
    // so the call answers in bounded time for any plan.
    let fan_out = seen > threshold || probed.len() > INLINE_CHAINS_MAX;
    let chains = probed.into_iter().map(|(chain, _)| chain).collect();
    Ok((chains, fan_out))
}

pub(crate) async fn status(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> ServiceResult<DeploymentStatus> {
    // Status and counters only: never the plan's body.
    let plan = load_header(store, tenant, plan_id).await?;
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    Ok(DeploymentStatus {
        plan_id,
        status: plan.status,
        percent: plan.rollout_percent(),
        sessions_marked: stats.sessions_marked,
        // Counted apart so that applied never exceeds marked: a session reconciled
        // without a flag was never part of `sessions_marked`.
        migrations_applied: stats.flagged_applied,
        migrations_pending: stats
            .sessions_marked
            .saturating_sub(stats.flagged_applied)
            .saturating_sub(stats.flags_withdrawn),
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
    })
}
