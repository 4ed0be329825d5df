//! Marking one page of a chain: which sessions are eligible, the conditional
//! marks, and the exact count of sessions this plan flagged.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use planning::eligibility::{MarkDecision, marking_decision};
use planning::scope::CompiledScope;
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, PlanStatus, ScenarioInput};
use store::{
    PageClaim, SessionMark, SessionPage, SessionPosition, SessionUnmark, StepQuery, Store,
    StoreResult,
};
use uuid::Uuid;

use super::contexts::step_names_of;
use super::error::MarkingResult;
use super::protocol::{Chain, page_id};

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
    /// Flags a withdrawal's page cleared.
    pub withdrawn: u64,
    pub next_cursor: Option<String>,
}

/// Mark one page of a chain, exactly: see [`mark_read_page`].
pub async fn mark_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    cursor: Option<String>,
) -> MarkingResult<PageOutcome> {
    let page = read_page(store, ctx, chain, cursor.clone()).await?;
    mark_read_page(store, ctx, chain, cursor.as_deref(), &page).await
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

/// [`mark_page`] for a page already read from `cursor` (which with the chain
/// names the page: [`page_id`]).
///
/// A page may be marked by several deliveries (a queue that delivers twice, a
/// retry after a crash, a resumption racing a slow walk), and between two of
/// them reconciles may apply flags and move sessions off the step — out of the
/// next read of the page. So the page is fixed once: the first delivery
/// *claims* it with the sessions it will mark and where the chain goes next,
/// and every delivery marks exactly the claimed sessions with the page's own
/// mark id. A mark counts when it sets the flag or finds the flag this page's
/// mark id set (still pending, or applied since), so every delivery counts the
/// same sessions, and the one that records the page records them exactly.
pub(crate) async fn mark_read_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    cursor: Option<&str>,
    page: &SessionPage,
) -> MarkingResult<PageOutcome> {
    let page_id = &page_id(chain, cursor);
    let plan = ctx.plan;
    if chain.withdraw {
        return withdraw_read_page(store, ctx, page_id, page).await;
    }
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
                    withdrawn: 0,
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
    let mut candidates = Vec::new();
    for session in &page.sessions {
        // A partial rollout marks only its cohort (a stable bucket per plan
        // and session, so a ramp's wider cohort holds the narrower one).
        if chain.percent < 100
            && !planning::cohort::in_cohort(plan.id, &session.session_id, chain.percent)
        {
            continue;
        }
        match marking_decision(session, plan.id, scope.as_ref(), step_name, ctx.now) {
            // Ours already: counted if this page's mark id set the flag.
            MarkDecision::AlreadyMarked | MarkDecision::Mark => {
                candidates.push(session.session_id.clone())
            }
            MarkDecision::FlaggedByAnotherPlan
            | MarkDecision::Pinned
            | MarkDecision::OutOfScope => {}
        }
    }
    let claim = store
        .claim_page(&PageClaim {
            tenant: plan.tenant_id,
            plan_id: plan.id,
            page_id: page_id.to_owned(),
            session_ids: candidates,
            next_cursor: page.next_cursor.clone(),
            at: ctx.now,
        })
        .await?;
    let marked = mark_claimed(store, ctx, chain, page_id, &claim.session_ids).await?;
    // A withdrawal that began while this page was marked may have walked this
    // step before the marks landed, leaving them to nobody: the page then
    // clears its own flags. Read after the marks, so that a withdrawal begun
    // before any of them landed is seen.
    if withdrawal_began(store, plan.tenant_id, plan.id).await? {
        return settle_marking_page(store, ctx, chain, cursor).await;
    }
    Ok(PageOutcome {
        marked,
        withdrawn: 0,
        next_cursor: claim.next_cursor,
    })
}

/// Mark a page's claimed sessions with the page's own mark id; how many count
/// as this page's (see [`Store::mark_session`]).
async fn mark_claimed(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    page_id: &str,
    session_ids: &[String],
) -> MarkingResult<u64> {
    let plan = ctx.plan;
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
    let mark_id = page_mark_id(plan.id, page_id);
    let marks: Vec<SessionMark> = session_ids
        .iter()
        .map(|id| SessionMark {
            session_id: id.clone(),
            expected: position.clone(),
            pending: pending.clone(),
            mark_id: mark_id.clone(),
        })
        .collect();
    // One batch per page: a single transaction on the embedded store, bounded
    // concurrent conditional writes on DynamoDB.
    let results = store
        .mark_sessions(plan.tenant_id, &marks, ctx.concurrency)
        .await?;
    Ok(results.iter().filter(|m| **m).count() as u64)
}

/// Whether a withdrawal of the plan has begun (or ended), from its header read
/// now.
pub(crate) async fn withdrawal_began(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
) -> MarkingResult<bool> {
    Ok(store
        .get_plan_header(tenant, plan_id)
        .await?
        .is_some_and(|plan| matches!(plan.status, PlanStatus::Withdrawing | PlanStatus::Withdrawn)))
}

/// Settle a marking page that a withdrawal overtook, and end its chain there
/// (no next cursor). The page's claim — the first delivery's, or an empty one
/// made now, so that a delivery that has not claimed it yet marks nothing — is
/// marked with the page's mark id, which counts exactly the flags the page set
/// (sets the ones an interrupted delivery had not, and sets none that a
/// withdrawal cleared: the store refuses those), then every flag of the claim
/// still set is cleared under the page's own settle id and counted withdrawn.
/// A delivery of the page still in flight then finds every claimed session
/// marked under its id and sets nothing; the withdrawal's own pages, clearing
/// under their ids, never count a flag this one counted.
pub(crate) async fn settle_marking_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    cursor: Option<&str>,
) -> MarkingResult<PageOutcome> {
    let plan = ctx.plan;
    let page_id = &page_id(chain, cursor);
    // Only the page its chain stands at is settled. A page recorded before (a
    // late duplicate delivery, a delivery that lost the race to record) has its
    // flags counted already, and the withdrawal's own pages clear them: clearing
    // them here would clear them uncounted.
    let stands_here = store
        .list_chains(plan.tenant_id, plan.id)
        .await?
        .iter()
        .any(|c| c.key() == chain.key() && !c.done && c.cursor.as_deref() == cursor);
    if !stands_here {
        return Ok(PageOutcome {
            marked: 0,
            withdrawn: 0,
            next_cursor: None,
        });
    }
    let claim = store
        .claim_page(&PageClaim {
            tenant: plan.tenant_id,
            plan_id: plan.id,
            page_id: page_id.to_owned(),
            session_ids: Vec::new(),
            next_cursor: None,
            at: ctx.now,
        })
        .await?;
    let marked = mark_claimed(store, ctx, chain, page_id, &claim.session_ids).await?;
    let settle_id = page_mark_id(plan.id, &format!("settle#{page_id}"));
    let withdrawn = clear_claimed(store, ctx, &claim.session_ids, &settle_id).await?;
    Ok(PageOutcome {
        marked,
        withdrawn,
        next_cursor: None,
    })
}

/// A withdrawal's page: clear the flags this plan set and reconcile has not
/// applied, exactly as [`mark_read_page`] sets them — the first delivery
/// claims the page's flagged sessions, every delivery clears exactly those
/// with the page's own id, and a clearing counts when it cleared the flag or
/// finds it cleared by the same id. A flag applied in between is not there to
/// clear (reconcile applies only while the plan applies, which it stopped
/// doing when the withdrawal began), so each flag is applied or withdrawn,
/// never both.
async fn withdraw_read_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    page_id: &str,
    page: &SessionPage,
) -> MarkingResult<PageOutcome> {
    let plan = ctx.plan;
    let flagged = page
        .sessions
        .iter()
        .filter(|s| {
            s.pending_migration
                .as_ref()
                .is_some_and(|flag| flag.migration_plan_id == plan.id)
        })
        .map(|s| s.session_id.clone())
        .collect();
    let claim = store
        .claim_page(&PageClaim {
            tenant: plan.tenant_id,
            plan_id: plan.id,
            page_id: page_id.to_owned(),
            session_ids: flagged,
            next_cursor: page.next_cursor.clone(),
            at: ctx.now,
        })
        .await?;
    let unmark_id = page_mark_id(plan.id, page_id);
    let withdrawn = clear_claimed(store, ctx, &claim.session_ids, &unmark_id).await?;
    Ok(PageOutcome {
        marked: 0,
        withdrawn,
        next_cursor: claim.next_cursor,
    })
}

/// Clear the plan's flags from a page's claimed sessions under `unmark_id`; how
/// many count as this clearing's (see [`Store::unmark_sessions`]).
async fn clear_claimed(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    session_ids: &[String],
    unmark_id: &str,
) -> MarkingResult<u64> {
    let plan = ctx.plan;
    let unmarks: Vec<SessionUnmark> = session_ids
        .iter()
        .map(|id| SessionUnmark {
            session_id: id.clone(),
            plan_id: plan.id,
            unmark_id: unmark_id.to_owned(),
        })
        .collect();
    let results = store
        .unmark_sessions(plan.tenant_id, &unmarks, ctx.concurrency)
        .await?;
    Ok(results.iter().filter(|c| **c).count() as u64)
}

/// The mark id of a page: the same for every delivery of the page, different
/// for every page and plan (a short digest of both ids).
fn page_mark_id(plan_id: uuid::Uuid, page_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{plan_id}\n{page_id}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
