//! Deploy step 2–3: marking eligible sessions with `pending_migration`.
//!
//! Work is split into *chains*, one per V1 step whose sessions must be marked
//! (each anchor's V1 step and each deleted step) and shard of the step index
//! (`STEP_INDEX_SHARDS`, fixed for a deployment when its marking starts): the
//! shards of one step are walked in parallel. A chain is walked page by page
//! through the (tenant, scenario, version, step, shard) index with a cursor, so
//! no process ever holds a whole session set. Each page is recorded in the ledger
//! together with the plan counters, conditioned on the ledger entry not existing:
//! redelivery and retries re-mark nothing (the mark itself is conditional) and
//! count nothing twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use planning::scope::CompiledScope;
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, PlanStatus, ScenarioInput};
use serde::{Deserialize, Serialize};
use store::{
    MarkedPage, PlanTransition, SessionMark, SessionPage, SessionPosition, StepQuery, Store,
    StoreError, StoreResult,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// One V1 step whose sessions a deployment marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub step_id: Uuid,
    /// The step-index shard this chain walks (`0..shards`).
    #[serde(default)]
    pub shard: u32,
    /// The plan's shard count, recorded on its chains when marking started.
    #[serde(default = "one_shard")]
    pub shards: u32,
    /// The anchor whose policy applies: the step's own anchor, or a deleted
    /// step's nearest anchor. `None` for a deleted step with no anchor at all
    /// (its sessions are still flagged, and reconcile exits them gracefully).
    pub anchor_content_hash: Option<String>,
}

fn one_shard() -> u32 {
    1
}

impl Chain {
    fn flag_hash(&self) -> String {
        self.anchor_content_hash.clone().unwrap_or_default()
    }

    /// This step's chain in every one of `shards` shards.
    pub fn sharded(self, shards: u32) -> impl Iterator<Item = Chain> {
        let shards = shards.max(1);
        (0..shards).map(move |shard| Chain {
            shard,
            shards,
            ..self.clone()
        })
    }
}

/// A queue message: mark one page of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkMessage {
    pub tenant_id: Uuid,
    pub plan_id: Uuid,
    pub chain: Chain,
    /// Index cursor of the page; `None` is the chain's first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl MarkMessage {
    /// The ledger key: the same page always has the same id. Cursors are
    /// bound to their shard's query, so the shard keeps the first pages of a
    /// step's shards apart.
    pub fn page_id(&self) -> String {
        format!(
            "{}#{}#{}",
            self.chain.step_id,
            self.chain.shard,
            self.cursor.as_deref().unwrap_or("start")
        )
    }
}

/// Where fan-out messages go: SQS on AWS, an in-process queue locally.
#[async_trait]
pub trait MarkingQueue: Send + Sync {
    async fn enqueue(&self, messages: Vec<MarkMessage>) -> ApiResult<()>;
}

/// The steps a plan marks (every anchor and every deleted step of V1), each
/// as its chain in shard 0 of 1: [`Chain::sharded`] gives the chains per shard.
pub fn chains_of(plan: &MigrationPlan) -> Vec<Chain> {
    let map = &plan.transformation_map;
    let anchors = map.anchors.iter().map(|a| Chain {
        step_id: a.anchor_node_id_v1,
        shard: 0,
        shards: 1,
        anchor_content_hash: Some(a.anchor_content_hash.clone()),
    });
    let deleted = map.deleted_nodes.iter().map(|d| Chain {
        step_id: d.node_id_v1,
        shard: 0,
        shards: 1,
        anchor_content_hash: d.nearest_anchor_hash.clone(),
    });
    anchors.chain(deleted).collect()
}

fn step_names_of(v1: &ScenarioInput) -> BTreeMap<Uuid, String> {
    v1.steps.iter().map(|s| (s.id, s.name.clone())).collect()
}

/// Deploying plans with their V1 step names, kept per process (like the SDK
/// clients) so that a page costs no plan or scenario reads: both are immutable
/// once a plan deploys (policies freeze at approval, V1 is archived). A cached
/// status may be stale; that is harmless, because marking and recording are
/// conditional, and it is refreshed whenever a page turns out to be recorded already.
#[derive(Default)]
pub struct PlanContexts {
    entries: Mutex<HashMap<(Uuid, Uuid), Arc<PreparedPlan>>>,
}

struct PreparedPlan {
    plan: MigrationPlan,
    step_names: Arc<BTreeMap<Uuid, String>>,
    /// Pages read ahead while the page before them was being marked, by page id.
    read_ahead: Mutex<Vec<ReadAhead>>,
}

struct ReadAhead {
    page_id: String,
    read_at: Instant,
    page: SessionPage,
}

/// Plans a process keeps at most; a worker mostly serves a handful at a time.
const PLAN_CONTEXTS: usize = 64;
/// Pages read ahead that a process keeps per plan (each at most one page).
const READ_AHEAD_PAGES: usize = 4;
/// A page read ahead is used only this soon after it was read: the next
/// message of a chain normally arrives within milliseconds, and an older read
/// is better done again.
const READ_AHEAD_MAX_AGE: Duration = Duration::from_secs(5);

impl PreparedPlan {
    fn keep_read_ahead(&self, page_id: String, page: SessionPage) {
        if let Ok(mut pages) = self.read_ahead.lock() {
            pages.retain(|p| p.read_at.elapsed() < READ_AHEAD_MAX_AGE);
            if pages.len() >= READ_AHEAD_PAGES {
                pages.remove(0);
            }
            pages.push(ReadAhead {
                page_id,
                read_at: Instant::now(),
                page,
            });
        }
    }

    fn take_read_ahead(&self, page_id: &str) -> Option<SessionPage> {
        let mut pages = self.read_ahead.lock().ok()?;
        let index = pages.iter().position(|p| p.page_id == page_id)?;
        let found = pages.remove(index);
        (found.read_at.elapsed() < READ_AHEAD_MAX_AGE).then_some(found.page)
    }
}

impl PlanContexts {
    fn get(&self, key: (Uuid, Uuid)) -> Option<Arc<PreparedPlan>> {
        self.entries.lock().ok()?.get(&key).cloned()
    }

    fn forget(&self, key: (Uuid, Uuid)) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key);
        }
    }

    /// The deploying plan of a message (from the cache or the store); `None`
    /// once the plan is no longer deploying.
    async fn deploying(
        &self,
        store: &dyn Store,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> ApiResult<Option<Arc<PreparedPlan>>> {
        if let Some(found) = self.get((tenant, plan_id)) {
            return Ok(Some(found));
        }
        let plan = store
            .get_plan(tenant, plan_id)
            .await?
            .ok_or_else(|| ApiError::not_found("Migration plan", plan_id))?;
        if plan.status != PlanStatus::Deploying {
            return Ok(None);
        }
        let v1 = store
            .get_scenario_version(plan.tenant_id, plan.scenario_id, plan.from_version)
            .await?
            .ok_or_else(|| ApiError::Unexpected("plan's from-version is missing".into()))?
            .definition();
        let prepared = Arc::new(PreparedPlan {
            step_names: Arc::new(step_names_of(&v1)),
            plan,
            read_ahead: Mutex::new(Vec::new()),
        });
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= PLAN_CONTEXTS {
                entries.clear();
            }
            entries.insert((tenant, plan_id), prepared.clone());
        }
        Ok(Some(prepared))
    }
}

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

    fn with_names(
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
) -> ApiResult<PageOutcome> {
    let page = read_page(store, ctx, chain, cursor).await?;
    mark_read_page(store, ctx, chain, &page).await
}

/// One page of a chain's sessions, through the step index.
async fn read_page(
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
async fn mark_read_page(
    store: &dyn Store,
    ctx: &MarkingContext<'_>,
    chain: &Chain,
    page: &SessionPage,
) -> ApiResult<PageOutcome> {
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
        match &session.pending_migration {
            Some(flag) if flag.migration_plan_id == plan.id => already_ours += 1,
            Some(_) => {}
            None if session.pinned_version.is_some() => {}
            None => {
                let in_scope = scope
                    .as_ref()
                    .is_none_or(|s| s.includes(session, step_name, ctx.now));
                if in_scope {
                    to_mark.push(SessionMark {
                        session_id: session.session_id.clone(),
                        expected: position.clone(),
                        pending: pending.clone(),
                    });
                }
            }
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
) -> ApiResult<u64> {
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
        .filter(|s| {
            s.pending_migration
                .as_ref()
                .is_some_and(|flag| flag.migration_plan_id == plan.id)
        })
        .count();
    Ok(ours as u64)
}

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
) -> ApiResult<bool> {
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
            cursor: message.cursor.clone(),
            next_cursor: outcome.next_cursor.clone(),
            sessions_marked: outcome.marked,
            by_anchor,
            at: recorded_at,
        })
        .await?;
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
) -> ApiResult<Option<MigrationPlan>> {
    let stats = store.get_plan_stats(tenant, plan_id).await?;
    if stats.marking_started_at.is_none() || stats.chains_done < stats.chains_total {
        return Ok(None);
    }
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
    // Status and revision only: the header, not the plan's body.
    let Some(plan) = store.get_plan_header(tenant, plan_id).await? else {
        return Ok(None);
    };
    if plan.status != PlanStatus::Deploying {
        return Ok(None);
    }
    match store
        .transition_plan(&PlanTransition {
            tenant,
            plan_id,
            from: PlanStatus::Deploying,
            expected_revision: plan.revision,
            to: PlanStatus::Deployed,
            at: now,
            by: None,
            reason: None,
        })
        .await
    {
        Ok(plan) => Ok(Some(plan)),
        // Another worker finished it first.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Process one queue message: mark its page, record it, and return the
/// continuation to enqueue — only when this call recorded the page, so that a
/// chain is walked once however often its messages are delivered.
pub async fn process_message(
    store: &dyn Store,
    contexts: &PlanContexts,
    message: &MarkMessage,
    page_size: usize,
    concurrency: usize,
    now: DateTime<Utc>,
) -> ApiResult<Option<MarkMessage>> {
    let key = (message.tenant_id, message.plan_id);
    let Some(prepared) = contexts
        .deploying(store, message.tenant_id, message.plan_id)
        .await?
    else {
        // Finished meanwhile: nothing left to do for this page.
        return Ok(None);
    };
    let plan = &prepared.plan;
    let ctx = MarkingContext::with_names(
        plan,
        prepared.step_names.clone(),
        now,
        page_size,
        concurrency,
    );
    let page = match prepared.take_read_ahead(&message.page_id()) {
        Some(page) => page,
        None => read_page(store, &ctx, &message.chain, message.cursor.clone()).await?,
    };
    // Read the next page while this one is written (its cursor is known now),
    // so that the chain's next message — usually handled by this same process —
    // starts writing at once. Staleness is harmless: every mark is conditional
    // and a mark that does not hold is looked at again before counting.
    let next = page.next_cursor.clone().map(|cursor| MarkMessage {
        cursor: Some(cursor),
        ..message.clone()
    });
    let read_next = async {
        match &next {
            Some(next) => Some(read_page(store, &ctx, &next.chain, next.cursor.clone()).await),
            None => None,
        }
    };
    let (outcome, ahead) = futures::join!(
        mark_read_page(store, &ctx, &message.chain, &page),
        read_next
    );
    let outcome = outcome?;
    drop(page);
    if let (Some(next), Some(Ok(ahead))) = (&next, ahead) {
        // A failed read ahead costs nothing: the next message reads again.
        prepared.keep_read_ahead(next.page_id(), ahead);
    }
    let recorded = record_page(store, plan, message, &outcome, now).await?;
    if !recorded {
        // A redelivery, or a second walk of this chain (a resumption racing a
        // slow worker): whoever recorded the page carries the chain on, so this
        // walk ends here. Should that walk have died before enqueueing its
        // continuation, the chain's lease runs out and the sweep resumes it
        // from the ledger.
        contexts.forget(key);
        return Ok(None);
    }
    if outcome.next_cursor.is_none() {
        // The plan may have just finished; later messages must see it.
        contexts.forget(key);
    }
    Ok(next)
}
