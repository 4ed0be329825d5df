//! Marking one page of a chain: which sessions are eligible, the conditional
//! marks, and the exact count of sessions this plan flagged.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use planning::eligibility::{MarkDecision, is_flagged_by, marking_decision};
use planning::scope::CompiledScope;
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, ScenarioInput};
use store::{SessionMark, SessionPage, SessionPosition, StepQuery, Store, StoreResult};
use uuid::Uuid;

use super::contexts::step_names_of;
use super::error::MarkingResult;
use super::protocol::Chain;

/// Everything needed to mark pages of one plan, prepared once.
pub struct MarkingContext<'a> {
    pub plan: &'a MigrationPlan,
    /// V1 step names, for `include/exclude_current_nodes` and CEL `session.current_step`.
    pub step_names: Arc<BTreeMap<Uuid, String>>,
    pub now: DateTime<Utc>,
    pub page_size: usize,
    pub concurrency: usize,
}

impl<'a> MarkingContext<'a> {
    pub fn new(
        plan: &'a MigrationPlan,
        v1: &ScenarioInput,
        now: DateTime<Utc>,
        page_size: usize,
        concurrency: usize,
    ) -> Self {
        Self::with_names(
            plan,
            Arc::new(step_names_of(v1)),
            now,
            page_size,
            concurrency,
        )
    }

    pub(crate) fn with_names(
        plan: &'a MigrationPlan,
        step_names: Arc<BTreeMap<Uuid, String>>,
        now: DateTime<Utc>,
        page_size: usize,
        concurrency: usize,
    ) -> Self {
        MarkingContext {
            plan,
            step_names,
            now,
            page_size,
            concurrency,
        }
    }

    fn policy(&self, chain: &Chain) -> Option<&'a AnchorMigrationPolicy> {
        chain
            .anchor_content_hash
            .as_ref()
            .and_then(|h| self.plan.anchor_policies.get(h))
    }
}

/// What marking one page did.
#[derive(Debug, Clone, PartialEq)]
pub struct PageOutcome {
    pub marked: u64,
    pub next_cursor: Option<String>,
}

/// Mark one page of a chain. Sessions already flagged by this plan count as
/// marked — whether an earlier attempt flagged them (a retry after a crash) or a
/// concurrent delivery of the same page did — so whichever attempt records the
/// page records it exactly.
pub async fn mark_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    cursor: Option<String>,
) -> MarkingResult<PageOutcome> {
    let page = read_page(store, ctx, chain, cursor).await?;
    mark_read_page(store, ctx, chain, &page).await
}

/// One page of a chain's sessions, through the step index.
pub(crate) async fn read_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    cursor: Option<String>,
) -> StoreResult<SessionPage> {
    let plan = ctx.plan;
    store
        .sessions_at_step(&StepQuery {
            tenant: plan.tenant_id,
            scenario_id: plan.scenario_id,
            version: plan.from_version,
            step_id: chain.step_id,
            shard: chain.shard,
            limit: ctx.page_size,
            cursor,
        })
        .await
}

/// [`mark_page`] for a page already read.
pub(crate) async fn mark_read_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    page: &SessionPage,
) -> MarkingResult<PageOutcome> {
    let plan = ctx.plan;
    let policy = ctx.policy(chain);
    let scope = match policy {
        Some(p) => match CompiledScope::compile(&p.scope_filter) {
            Ok(scope) => Some(scope),
            Err(error) => {
                // A policy saved before the expression limits existed: its sessions
                // are left unmarked (out of scope), as reconcile leaves them, rather
                // than failing the whole deployment.
                tracing::warn!(
                    plan_id = %plan.id,
                    anchor = %p.anchor_content_hash,
                    invalid_conditions = error.len(),
                    "stored scope filter no longer compiles; marking none of its sessions"
                );
                return Ok(PageOutcome {
                    marked: 0,
                    next_cursor: page.next_cursor.clone(),
                });
            }
        },
        None => None,
    };
    let step_name = ctx
        .step_names
        .get(&chain.step_id)
        .map(String::as_str)
        .unwrap_or("");
    let position = SessionPosition {
        scenario_id: plan.scenario_id,
        version: plan.from_version,
        step_id: chain.step_id,
    };
    let pending = PendingMigration {
        migration_plan_id: plan.id,
        target_version: plan.to_version,
        anchor_content_hash: chain.flag_hash(),
        from_step_id: chain.step_id,
        marked_at: ctx.now,
    };
    let mut already_ours = 0u64;
    let mut to_mark = Vec::new();
    for session in &page.sessions {
        match marking_decision(session, plan.id, scope.as_ref(), step_name, ctx.now) {
            MarkDecision::AlreadyMarked => already_ours += 1,
            MarkDecision::Mark => to_mark.push(SessionMark {
                session_id: session.session_id.clone(),
                expected: position.clone(),
                pending: pending.clone(),
            }),
            MarkDecision::FlaggedByAnotherPlan
            | MarkDecision::Pinned
            | MarkDecision::OutOfScope => {}
        }
    }
    // One batch per page: a single transaction on the embedded store, bounded
    // concurrent conditional writes on DynamoDB.
    let results = store
        .mark_sessions(plan.tenant_id, &to_mark, ctx.concurrency)
        .await?;
    let newly = results.iter().filter(|m| **m).count() as u64;
    // A mark that did not hold may have lost to a concurrent delivery of this
    // very page (at-least-once queues do deliver twice): whichever delivery
    // records the page must count those sessions too, so look at them again.
    // Normally this is only the few sessions that moved meanwhile.
    let lost: Vec<&SessionMark> = to_mark
        .iter()
        .zip(&results)
        .filter(|(_, marked)| !**marked)
        .map(|(m, _)| m)
        .collect();
    let flagged_meanwhile = flagged_by_plan(store, plan, &lost, ctx.concurrency).await?;
    let marked = already_ours + newly + flagged_meanwhile;
    Ok(PageOutcome {
        marked,
        next_cursor: page.next_cursor.clone(),
    })
}

/// How many of `marks` name a session that now carries this plan's flag.
async fn flagged_by_plan(
    store: &dyn Store,
    plan: &MigrationPlan,
    marks: &[&SessionMark],
    concurrency: usize,
) -> StoreResult<u64> {
    use futures::{StreamExt, TryStreamExt};
    if marks.is_empty() {
        return Ok(0);
    }
    // Built up front: a mapping closure returning borrowed futures defeats the
    // compiler's `Send` inference for the stream.
    let reads: Vec<_> = marks
        .iter()
        .map(|m| store.get_session(plan.tenant_id, &m.session_id))
        .collect();
    let sessions: Vec<_> = futures::stream::iter(reads)
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let ours = sessions
        .iter()
        .flatten()
        .filter(|s| is_flagged_by(s, plan.id))
        .count();
    Ok(ours as u64)
}
