//! Deploy (activation + marking) and deployment status.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use planning::{
    DeploymentResult, DeploymentStatus, MigrationPlan, MigrationsByScenario, PlanStatus,
};
use store::{
    ActivationError, PlanActivation, PlanQuery, PlanStats, PlanTransition, StepQuery, Store,
    StoreError,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::marking::{self, Chain, MarkMessage, MarkingContext};
use crate::services::plans::load;
use crate::state::AppState;

/// A deployment answer: `finished` is false while marking fans out (HTTP 202).
pub struct DeployOutcome {
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
    }
}

pub async fn deploy(
    state: &AppState,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<DeployOutcome> {
    let store = state.store.as_ref();
    let plan = load(store, tenant, plan_id).await?;
    match plan.status {
        PlanStatus::Approved => {}
        PlanStatus::Deploying => {
            let stats = store.get_plan_stats(tenant, plan_id).await?;
            return Ok(DeployOutcome {
                result: result_of(&plan, &stats),
                finished: false,
            });
        }
        other => {
            return Err(ApiError::Conflict(format!(
                "Plan is {}; only approved plans can be deployed",
                other.as_str()
            )));
        }
    }
    let target = store
        .get_plan_target(tenant, plan_id)
        .await?
        .ok_or_else(|| ApiError::Unexpected("approved plan without its target version".into()))?;
    let activation = PlanActivation {
        tenant,
        plan_id,
        expected_revision: plan.revision,
        scenario_id: plan.scenario_id,
        from_version: plan.from_version,
        target,
        at: now,
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

/// Mark the plan itself superseded (its scenario moved on without it).
async fn supersede(store: &dyn Store, plan: &MigrationPlan, now: DateTime<Utc>) -> ApiResult<()> {
    let change = PlanTransition {
        tenant: plan.tenant_id,
        plan_id: plan.id,
        from: plan.status,
        expected_revision: plan.revision,
        to: PlanStatus::Superseded,
        at: now,
        by: None,
        reason: Some("scenario moved to another version".into()),
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
) -> ApiResult<()> {
    for status in [PlanStatus::Pending, PlanStatus::Approved] {
        let mut next_token = None;
        loop {
            let page = store
                .list_plans(&PlanQuery {
                    tenant: deployed.tenant_id,
                    scenario_id: Some(deployed.scenario_id),
                    status: Some(status),
                    limit: 100,
                    next_token: next_token.take(),
                })
                .await?;
            for item in &page.plans {
                if item.id == deployed.id || item.from_version != deployed.from_version {
                    continue;
                }
                if let Some(sibling) = store.get_plan(deployed.tenant_id, item.id).await? {
                    supersede(store, &sibling, now).await?;
                }
            }
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => break,
            }
        }
    }
    Ok(())
}

async fn mark(
    state: &AppState,
    plan: MigrationPlan,
    now: DateTime<Utc>,
) -> ApiResult<DeployOutcome> {
    let store = state.store.as_ref();
    let config = &state.config;
    let v1 = store
        .get_scenario_version(plan.tenant_id, plan.scenario_id, plan.from_version)
        .await?
        .ok_or_else(|| ApiError::Unexpected("plan's from-version is missing".into()))?
        .definition();
    // Only chains with sessions become work; inline vs fan-out needs to know
    // whether there are more than the threshold, not how many — a large
    // deployment is never counted inside this call.
    let (chains, fan_out) = probe_chains(
        store,
        &plan,
        marking::chains_of(&plan),
        config.inline_mark_threshold,
        config.mark_page_size,
        config.count_concurrency,
    )
    .await?;
    store
        .start_marking(plan.tenant_id, plan.id, chains.len() as u64)
        .await?;

    if let (true, Some(queue)) = (fan_out, state.queue.as_ref()) {
        let messages = chains
            .into_iter()
            .map(|chain| MarkMessage {
                tenant_id: plan.tenant_id,
                plan_id: plan.id,
                chain,
                cursor: None,
            })
            .collect();
        queue.enqueue(messages).await?;
        let stats = store.get_plan_stats(plan.tenant_id, plan.id).await?;
        return Ok(DeployOutcome {
            result: result_of(&plan, &stats),
            finished: false,
        });
    }

    // Inline: the same pages and ledger as the workers, walked in this call.
    let ctx = MarkingContext::new(
        &plan,
        &v1,
        now,
        config.mark_page_size,
        config.mark_concurrency,
    );
    for chain in chains {
        let mut cursor = None;
        loop {
            let message = MarkMessage {
                tenant_id: plan.tenant_id,
                plan_id: plan.id,
                chain: chain.clone(),
                cursor: cursor.clone(),
            };
            let outcome = marking::mark_page(store, &ctx, &chain, cursor).await?;
            marking::record_page(store, &plan, &message, &outcome, now).await?;
            match outcome.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    // With no chains at all, nothing triggered completion yet.
    marking::finish_if_complete(store, plan.tenant_id, plan.id, now).await?;
    let plan = load(store, plan.tenant_id, plan.id).await?;
    let stats = store.get_plan_stats(plan.tenant_id, plan.id).await?;
    Ok(DeployOutcome {
        finished: plan.status == PlanStatus::Deployed,
        result: result_of(&plan, &stats),
    })
}

/// The chains that have sessions (in step order), and whether more than
/// `threshold` sessions are to be marked. One single-session probe per chain
/// (`concurrency` at a time), then pages of at most `page_size` through the
/// non-empty chains, each from where its probe stopped, until more than
/// `threshold` sessions are seen or all are: never more than `threshold + 1`
/// sessions read beyond the probes, one page held at a time.
async fn probe_chains(
    store: &dyn Store,
    plan: &MigrationPlan,
    chains: Vec<Chain>,
    threshold: u64,
    page_size: usize,
    concurrency: usize,
) -> ApiResult<(Vec<Chain>, bool)> {
    let query = |chain: &Chain, limit: usize, cursor: Option<String>| StepQuery {
        tenant: plan.tenant_id,
        scenario_id: plan.scenario_id,
        version: plan.from_version,
        step_id: chain.step_id,
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
    probed.sort_by_key(|(chain, _)| chain.step_id);

    // Each probe found one session; counting goes on from where it stopped.
    let mut seen: u64 = probed.len() as u64;
    'chains: for (chain, probe) in &probed {
        let mut cursor = probe.next_cursor.clone();
        while let Some(from) = cursor {
            if seen > threshold {
                break 'chains;
            }
            let wanted = threshold.saturating_sub(seen).saturating_add(1);
            let limit = usize::try_from(wanted)
                .unwrap_or(usize::MAX)
                .min(page_size.max(1));
            let page = store
                .sessions_at_step(&query(chain, limit, Some(from)))
                .await?;
            seen = seen.saturating_add(page.sessions.len() as u64);
            cursor = page.next_cursor;
        }
    }
    let fan_out = seen > threshold;
    let chains = probed.into_iter().map(|(chain, _)| chain).collect();
    Ok((chains, fan_out))
}

pub async fn status(store: &dyn Store, tenant: Uuid, plan_id: Uuid) -> ApiResult<DeploymentStatus> {
    let plan = load(store, tenant, plan_id).await?;
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    Ok(DeploymentStatus {
        plan_id,
        status: plan.status,
        sessions_marked: stats.sessions_marked,
        migrations_applied: stats.migrations_applied,
        migrations_pending: stats.sessions_marked.saturating_sub(stats.flagged_applied),
        migrations_by_scenario: MigrationsByScenario {
            clean_graft: stats.clean_graft,
            gap_fill: stats.gap_fill,
            re_route: stats.re_route,
        },
        checkpoint_blocks: stats.checkpoint_blocks,
        deployed_at: plan.deployed_at,
        last_migration_at: stats.last_migration_at,
        pages_failed: stats.pages_failed,
    })
}
