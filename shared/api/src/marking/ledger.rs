//! Recording marked pages in the ledger, and finishing a deployment once every
//! chain is done.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use planning::lifecycle::{self, PlanCommand};
use planning::{MigrationPlan, PlanStatus};
use store::{MarkedPage, PlanTransition, RolloutMove, Store, StoreError, StoreResult};
use uuid::Uuid;

use super::page::PageOutcome;
use super::protocol::MarkMessage;

/// Record a marked page in the ledger and move its chain on (idempotent, and
/// only from where the chain stands) and, when it completes the last chain,
/// finish the deployment. `false`: not recorded — the page was recorded before,
/// or another walk of the chain is ahead; the caller must not continue the chain.
pub async fn record_page(
    store: &dyn Store,
    plan: &MigrationPlan,
    message: &MarkMessage,
    outcome: &PageOutcome,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let mut by_anchor = BTreeMap::new();
    if outcome.marked > 0 {
        by_anchor.insert(message.chain.flag_hash(), outcome.marked);
    }
    // `deployed_at` and the chain's lease are when the page was recorded, not
    // when its marking started (`now`, the flags' `marked_at`).
    let recorded_at = Utc::now().max(now);
    let recorded = store
        .record_marking_page(&MarkedPage {
            tenant: plan.tenant_id,
            plan_id: plan.id,
            page_id: message.page_id(),
            chain_step: message.chain.step_id,
            chain_shard: message.chain.shard,
            chain_pass: message.chain.pass,
            cursor: message.cursor.clone(),
            next_cursor: outcome.next_cursor.clone(),
            sessions_marked: outcome.marked,
            flags_withdrawn: outcome.withdrawn,
            by_anchor,
            at: recorded_at,
        })
        .await?;
    if recorded {
        crate::metrics::page_recorded(outcome.marked, outcome.withdrawn);
    }
    if recorded && outcome.next_cursor.is_none() {
        finish_if_complete(store, plan.tenant_id, plan.id, recorded_at).await?;
    }
    Ok(recorded)
}

/// Move a deploying plan to `deployed` once every chain is done. Safe to call
/// any number of times, concurrently.
pub async fn finish_if_complete(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<Option<MigrationPlan>> {
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    if stats.marking_started_at.is_none() {
        return Ok(None);
    }
    // Status and revision only: the header, not the plan's body.
    let Some(plan) = store.get_plan_header(tenant, plan_id).await? else {
        return Ok(None);
    };
    // A pass (a ramp's, a withdrawal's) that has not registered its chains yet
    // is not finished: the counters only cover the passes before it.
    if plan.rollout_pass > stats.marking_pass {
        return Ok(None);
    }
    let command = match plan.status {
        // Marking: every pass before this one finished, so all chains count.
        PlanStatus::Deploying => {
            if stats.chains_done < stats.chains_total {
                return Ok(None);
            }
            PlanCommand::FinishDeploying
        }
        // A withdrawal ends when its own chains and the marking chains it cut
        // short (settled) are all done: no page can flag a session after that.
        PlanStatus::Withdrawing => PlanCommand::FinishWithdrawing,
        _ => return Ok(None),
    };
    // The counters say so; the chains themselves have the last word (two
    // starters racing after a crash may have registered more chains than counted).
    if store
        .list_chains(tenant, plan_id)
        .await?
        .iter()
        .any(|c| !c.done)
    {
        return Ok(None);
    }
    let Ok(change) = lifecycle::transition(plan.status, command, now) else {
        return Ok(None);
    };
    // The end of a withdrawal gives the scenario its from-version back (or
    // drops the partial rollout), in the same step.
    let rollout = (plan.status == PlanStatus::Withdrawing).then(|| RolloutMove {
        scenario_id: plan.scenario_id,
        from_version: plan.from_version,
        to_version: plan.to_version,
        percent: plan.rollout_percent(),
        withdraw: true,
    });
    match store
        .transition_plan(&PlanTransition {
            tenant,
            plan_id,
            expected_revision: plan.revision,
            change,
            rollout,
        })
        .await
    {
        Ok(plan) => Ok(Some(plan)),
        // Another worker finished it first.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
