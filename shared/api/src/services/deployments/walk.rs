//! Marking's walk: the chains of a pass and which have sessions, their
//! dispatch (inline or through the queue), page after page with the ledger,
//! the resumption of stalled chains and the periodic sweep.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use planning::{MigrationPlan, PlanStatus};
use store::{ChainStart, StepQuery, Store, StoreError};
use uuid::Uuid;

use super::{DeployOutcome, progress};
use crate::marking::{self, Chain, MarkMessage, MarkingContext};
use crate::services::Deps;
use crate::services::error::{ServiceError, ServiceResult};
use crate::services::plans::load;

/// Marking from the start: right after activation, or when a deploy died
/// between activation and the start of marking.
pub(super) async fn mark(
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
    let mut work: Vec<(Chain, Option<String>)> =
        chains.into_iter().map(|chain| (chain, None)).collect();
    if withdraw {
        // The marking chains the withdrawal cut short are settled where they
        // stand (their pages in flight clear their own flags; the others
        // claim their next page empty), and `withdrawn` waits for them.
        work.extend(unfinished_marking(store, &plan).await?);
    }
    dispatch(state, &plan, work, fan_out, now).await
}

/// The unfinished marking chains of the passes before a withdrawal's, where
/// each stands.
async fn unfinished_marking(
    store: &dyn Store,
    plan: &MigrationPlan,
) -> ServiceResult<Vec<(Chain, Option<String>)>> {
    Ok(store
        .list_chains(plan.tenant_id, plan.id)
        .await?
        .into_iter()
        .filter(|c| !c.done && c.pass < plan.rollout_pass)
        .map(|c| Chain::of_state(c, false))
        .collect())
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
pub(super) async fn resume(
    state: &Deps,
    plan: MigrationPlan,
    now: DateTime<Utc>,
) -> ServiceResult<DeployOutcome> {
    resume_chains(state, plan, now, Takeover::Stalled).await
}

/// Which marking chains a resumption takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Takeover {
    /// Those whose lease ran out (a process died, a store error).
    Stalled,
    /// Every unfinished one: after a pause, which stopped them all.
    Unfinished,
}

pub(super) async fn resume_chains(
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
        // Only the current pass walks; a withdrawal also settles the marking
        // chains it cut short.
        let current = chain.pass == plan.rollout_pass;
        if !current && !withdraw {
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
            work.push(Chain::of_state(chain, withdraw && current));
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
    /// What the pass over the lifecycle events' outbox did (after the plans,
    /// so that a deployment this sweep finished is announced in it).
    pub events: crate::events::PublishReport,
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
    report.events = crate::events::publish_pending(store, state.events(), now).await?;
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
            Ok(report)
                if report.plans_deploying > 0
                    || report.items_expired > 0
                    || report.events.events_sent > 0 =>
            {
                tracing::info!(?report, "deployment sweep");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "deployment sweep failed"),
        }
    }
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
        let message = MarkMessage {
            tenant_id: plan.tenant_id,
            plan_id: plan.id,
            chain: chain.clone(),
            cursor: cursor.clone(),
        };
        // The plan's status read fresh before each page: a pause stops the walk
        // (resume walks on from the ledger); a withdrawal settles a marking
        // chain's page and ends the chain.
        let status = store
            .get_plan_header(plan.tenant_id, plan.id)
            .await?
            .map(|p| p.status);
        let outcome = match marking::page_turn(&chain, status) {
            marking::PageTurn::Stop => return Ok(()),
            marking::PageTurn::Settle => {
                marking::settle_marking_page(store, ctx, &chain, cursor.as_deref()).await?
            }
            marking::PageTurn::Walk => marking::mark_page(store, ctx, &chain, cursor).await?,
        };
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
/// absent) prune nothing. Past `INLINE_CHAINS_MAX` occupied chains nothing is
/// probed: every shard of the occupied steps is registered and fans out.
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
    // More chains than a call walks: they fan out anyway, so the probes (one
    // query each, seconds for a few hundred on DynamoDB) are not worth the
    // call's time; a chain without sessions ends at its first, empty page.
    if counted.counted_at.is_some() && chains.len() > INLINE_CHAINS_MAX {
        return Ok((chains, true));
    }
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
