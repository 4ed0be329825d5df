//! Storage for focal-migrations.
//!
//! [`Store`] is the one domain-level trait the HTTP layer, the marking worker and
//! the reconcile path use. Three implementations behave the same and pass one
//! contract suite: DynamoDB, embedded (a single redb file), and in-memory.
//!
//! Semantics every implementation honours:
//! - every key starts with the tenant: a lookup with another tenant finds nothing;
//! - state changes are conditional and fail with [`StoreError::Conflict`] when the
//!   condition does not hold — never a silent overwrite;
//! - the marking ledger makes page recording idempotent.
//!
//! Backends: [`MemoryStore`] and [`EmbeddedStore`] share one implementation of
//! these semantics over an ordered key-value transaction ([`kv`]); [`DynamoStore`]
//! maps them onto conditional writes and transactions (key design in [`dynamo`]).
//! Pagination tokens are opaque, bound to their query (another query, tenant or
//! filter gets [`StoreError::InvalidToken`]) and exact: a page that ends the
//! results carries no token.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use planning::{AnchorMigrationPolicy, MigrationPlan, PendingMigration, ScenarioVersion, Session};
use uuid::Uuid;

mod codec;
pub mod counts;
pub mod dynamo;
/// The redb file store: `migrations serve --store embedded` and the tests (`local` feature).
#[cfg(feature = "local")]
mod embedded;
mod error;
mod kv;
mod memory;
pub mod sdk;
mod semantics;
mod session_rules;
// Fresh DynamoDB Local tables and the backend-matrix macro, for tests and benchmarks
// (documented in the module itself, whose doc links resolve there).
#[cfg(feature = "test-support")]
pub mod testing;
mod types;

pub use counts::{Recount, StepCounts};
#[cfg(feature = "local")]
pub use dynamo::create_tables;
pub use dynamo::{DynamoStore, TableNames, retry_backoff};
#[cfg(feature = "local")]
pub use embedded::EmbeddedStore;
pub use error::{StoreError, StoreResult};
pub use memory::MemoryStore;
pub use types::*;

/// A plan without its heavy parts (transformation map, summary, policies left
/// empty): what [`Store::get_plan_header`] returns.
pub fn plan_header(plan: &MigrationPlan) -> MigrationPlan {
    MigrationPlan {
        transformation_map: Default::default(),
        summary: Default::default(),
        anchor_policies: Default::default(),
        ..plan.clone()
    }
}

/// Shards of the step index unless configured otherwise (`STEP_INDEX_SHARDS`).
/// Eight keeps a hot step's index writes under eight partition keys (about
/// 8,000 writes/s on DynamoDB's per-key limit) and lets eight workers mark one
/// step at once, while a deploy registers only eight chains per step.
pub const DEFAULT_STEP_INDEX_SHARDS: u32 = 8;

/// Most shards a step index may have: every marked step registers this many
/// chains, and the whole chain list is read on every resume.
pub const MAX_STEP_INDEX_SHARDS: u32 = 256;

/// The step-index shard of a session: 32-bit FNV-1a of the session id's UTF-8
/// bytes, modulo `shards` (offset basis `0x811C9DC5`; for each byte, XOR it in,
/// then multiply by `0x01000193` modulo 2³²). Stable across processes, releases
/// and languages, so that a runtime writing items straight into the sessions
/// table computes the same `step_key` (docs/runtime.md, "Writing session items
/// straight into the table").
/// `shards` of 0 counts as 1.
pub fn step_shard(session_id: &str, shards: u32) -> u32 {
    fnv1a32(session_id.as_bytes()) % shards.max(1)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The storage contract. All methods are tenant-scoped.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ----- scenarios -------------------------------------------------------

    /// Create the first known version of a scenario and make it current.
    /// `Conflict` if the scenario already exists (any version).
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()>;

    /// The current version of a scenario.
    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>>;

    /// The current version's number and the partial rollout leaving it: one
    /// small read, no definition.
    async fn get_scenario_head(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioHead>>;

    /// Any archived or current version.
    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>>;

    // ----- plans -----------------------------------------------------------

    /// Store a new pending plan with its proposed V2 definition.
    /// `Conflict` if a live (not rejected/superseded) plan exists for the same
    /// (scenario, from_version, to_version). Plans of any size must store
    /// (compressed, split into parts when needed).
    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()>;

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>>;

    /// The plan without its transformation map, summary and policies (left
    /// empty): what status, lifecycle checks and listings need, at the cost of one
    /// small read whatever the plan's size.
    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        Ok(self
            .get_plan(tenant, plan_id)
            .await?
            .map(|plan| plan_header(&plan)))
    }

    /// The plan's summary alone, without loading its transformation map.
    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<planning::MigrationSummary>> {
        Ok(self
            .get_plan(tenant, plan_id)
            .await?
            .map(|plan| plan.summary))
    }

    /// The V2 definition stored with the plan.
    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>>;

    /// Newest first. `total` counts every plan matching the filter.
    async fn list_plans(&self, query: &PlanQuery) -> StoreResult<PlanPage>;

    /// Replace the plan's policies; holds only while the plan is `pending` at
    /// `expected_revision`. Bumps the revision. Returns the stored plan.
    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan>;

    /// Move a plan from `change.from` to `change.to`, conditioned on its status and
    /// revision. Bumps the revision. Moving to a non-live status frees the
    /// (scenario, from, to) slot for a new plan. Returns the stored plan.
    /// `Conflict` when the plan is not at `from`/`expected_revision` — including
    /// when it does not exist (check with `get_plan` first for a 404).
    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan>;

    /// Deploy step 1, atomically: plan `approved → deploying` (at `expected_revision`),
    /// scenario current version `from_version → to_version` (below 100 percent:
    /// the version stays and the partial rollout is recorded with it), V2
    /// archived as a version. A scenario with another partial rollout is
    /// [`ActivationError::ScenarioMoved`] too.
    /// [`ActivationError::PlanChanged`] if the plan is not approved at that revision
    /// (checked first), [`ActivationError::ScenarioMoved`] if the current version is
    /// no longer `from_version`. Nothing is written on either error; superseding
    /// the plans left behind is the caller's (conditional) transition.
    async fn activate_plan(
        &self,
        activation: &PlanActivation,
    ) -> Result<MigrationPlan, ActivationError>;

    // ----- the lifecycle events' outbox ---------------------------------------

    /// Plans whose lifecycle events may not all be sent yet, across tenants:
    /// every plan creation, transition and activation writes its plan's entry
    /// (the plan's new revision) in the same atomic write, so a crash after the
    /// write loses no event. At most `limit`, in no particular order.
    async fn list_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>>;

    /// The outbox entry of one plan, if it has one (read consistently).
    async fn get_outbox(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<OutboxEntry>>;

    /// Record that `entry`'s plan has had its events sent up to revision
    /// `published` (never moving it back). With `finished`, remove the entry
    /// instead — unless the plan changed since `entry` was read (its revision
    /// moved on): then only `published` is recorded and the entry stays for
    /// the newer change.
    async fn settle_outbox(
        &self,
        entry: &OutboxEntry,
        published: u64,
        finished: bool,
    ) -> StoreResult<()>;

    // ----- plan counters and the marking ledger -----------------------------

    /// The plan's counters; all zero for a plan never counted (or unknown).
    /// `last_migration_at` is the latest audit event time.
    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats>;

    /// [`Store::get_plan_stats`] for callers that need only the counters (the
    /// rollout guard after each migration): `last_migration_at` may be absent,
    /// which saves DynamoDB the audit-event query.
    async fn get_plan_counters(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.get_plan_stats(tenant, plan_id).await
    }

    /// The plan's flagged migrations applied per minute, for the minutes from
    /// `since` (a minute's start) on, oldest first; minutes with none are
    /// absent. Counted in the same write as each migration and kept a day.
    async fn applied_per_minute(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<planning::AppliedInMinute>>;

    /// The plan's pending flagged sessions by the UTC day of their last
    /// activity (days with none left out, any order), from counters moved with
    /// every session write — on DynamoDB by the sessions stream, so as fresh as
    /// the session counts.
    async fn pending_by_activity_day(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Vec<planning::PendingOnDay>>;

    /// Start marking pass `pass` of a deploying plan (0: the deploy's, one more
    /// per ramp): register its chains (each at its first page, all of this pass)
    /// and how many must finish — those of earlier passes, all done, plus these.
    /// Only the first call for a pass starts it (`true`); later calls change
    /// nothing and return `false` — a resumer then reads the registered chains
    /// with [`Store::list_chains`].
    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        pass: u32,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// How many shards this store's step index writes sessions into
    /// ([`step_shard`]); marking registers one chain per (step, shard).
    fn step_index_shards(&self) -> u32;

    /// The registered chains of a plan and where each stands.
    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>>;

    /// Take over a chain whose lease ran out: holds only if the chain is not done
    /// and still stands as it was read (`seen_updated_at`); sets `updated_at` to
    /// `at`, counts the resumption on the chain and in the plan stats.
    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chain: ChainKey,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Plans in `deploying`, across tenants, for the periodic sweep: (tenant, plan).
    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>>;

    /// Record one marked page, move its chain on to `next_cursor` (done when
    /// none) and add its counts to the plan stats, in one atomic step conditioned
    /// on the ledger entry `page_id` not existing and the chain standing, not
    /// done, at the page's `cursor`. Returns `false` (and changes nothing)
    /// otherwise: the page was recorded already, or another walk of the chain
    /// got there first.
    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool>;

    /// Count a page that was given up on (it went to the dead-letter queue).
    /// Idempotent per `page_id`.
    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool>;

    // ----- sessions --------------------------------------------------------

    /// Insert or replace a session exactly as given, revision included: for
    /// imports, seeding and tests. The runtime's path is [`Store::write_session`].
    async fn put_session(&self, session: &Session) -> StoreResult<()>;

    /// The runtime's write (`PUT /sessions/{id}`) under the session concurrency
    /// contract, decided atomically against the stored session: the client's
    /// precondition, no move back to an older version, product-owned fields kept
    /// (cleared on a move to another scenario), `revision` + 1. Returns what was stored.
    ///
    /// Items written straight into the sessions table by a runtime must bump
    /// `revision` too, or conditional writes cannot see them.
    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError>;

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>>;

    /// Sessions by id, in the order given, the missing ones left out (a
    /// forecast's sample). DynamoDB reads them in batches of 100.
    async fn get_sessions(&self, tenant: Uuid, ids: &[String]) -> StoreResult<Vec<Session>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(self.get_session(tenant, id).await?);
        }
        Ok(found)
    }

    /// Sessions at one step of one scenario version in one shard of the step
    /// index (`query.shard`); cursor-paged, ordered by session id. Every session
    /// at the step is in exactly one shard. The sessions carry what marking and
    /// the scope filter read (position, `channel`, `created_at`, `variables`,
    /// `pending_migration`, `pinned_version`); DynamoDB's index projects only
    /// those, so other fields may come back empty — read the session for them.
    async fn sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage>;

    /// [`Store::sessions_at_step`] with every field of each session (the
    /// forecast decides on `step_history` and the checksum too). The embedded
    /// and in-memory stores return whole sessions from the index already;
    /// DynamoDB reads the page's items from the table (a session that left the
    /// step in between is left out). The cursor is the index page's.
    async fn whole_sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        self.sessions_at_step(query).await
    }

    /// How many sessions sit at that step (same index), paging it: linear in
    /// sessions. The exact recount's count (a queue message); plans and deploys
    /// read [`Store::session_counts`].
    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64>;

    /// How many sessions sit at each of `steps` of one scenario version (steps
    /// without sessions are left out). This default counts step by step through
    /// the index, `concurrency` at a time; stores that can count a whole version
    /// in one read do.
    async fn count_sessions_at_steps(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        steps: &[Uuid],
        concurrency: usize,
    ) -> StoreResult<BTreeMap<Uuid, u64>> {
        use futures::{StreamExt, TryStreamExt};
        let counts: Vec<(Uuid, u64)> = futures::stream::iter(steps.iter().copied())
            .map(|step| async move {
                self.count_sessions_at_step(tenant, scenario_id, version, step)
                    .await
                    .map(|n| (step, n))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
    }

    /// The session counts of one scenario version, per step, with how fresh
    /// they are ([`StepCounts::counted_at`]): one range read (embedded,
    /// in-memory: exact, kept in the transaction of every session write) or one
    /// Query of counters fed by the sessions table's change stream (DynamoDB),
    /// whatever the number of sessions. See [`counts`].
    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<StepCounts>;

    /// Store the result of an exact recount, replacing the version's previous one.
    async fn put_recount(&self, recount: &Recount) -> StoreResult<()>;

    /// The latest exact recount of a scenario version, if any was made.
    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<Recount>>;

    /// Set `pending_migration` (and bump `revision`) and nothing else, only if the
    /// session is still at (scenario, version, step), has no pending migration, is
    /// not pinned, and no withdrawal cleared a flag of the same `mark_id` from it;
    /// the flag remembers `mark_id`.
    /// Returns whether the flag is this mark's: set now, or found set by a mark
    /// with the same `mark_id` (still pending, applied by a reconcile since, or
    /// withdrawn since). A retried or repeated mark therefore answers the same as
    /// the first, and a delivery of a page that a withdrawal overtook sets again
    /// none of the flags the withdrawal cleared.
    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
        mark_id: &str,
    ) -> StoreResult<bool>;

    /// Claim a marking page: store `claim` unless the page was claimed before,
    /// and return the page's claim — this one, or the first one made. Every
    /// delivery of a page then marks the same sessions.
    async fn claim_page(&self, claim: &PageClaim) -> StoreResult<PageClaim>;

    /// [`Store::mark_session`] for a page of sessions: each mark is decided on its
    /// own, under the same condition. Returns one flag per input, in order.
    /// `concurrency` bounds the writes in flight at once (the caller's
    /// `MARK_CONCURRENCY`; 0 counts as 1) where a backend writes marks one by one:
    /// DynamoDB issues that many conditional updates concurrently, the embedded and
    /// in-memory stores write the whole page in one transaction and ignore it.
    /// This default marks one by one.
    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let _ = concurrency;
        let mut marked = Vec::with_capacity(marks.len());
        for m in marks {
            marked.push(
                self.mark_session(tenant, &m.session_id, &m.expected, &m.pending, &m.mark_id)
                    .await?,
            );
        }
        Ok(marked)
    }

    /// Clear withdrawn flags, each on its own: a session's flag is cleared
    /// (its revision bumped) only while it is `plan_id`'s; the session keeps the
    /// cleared flag's mark id (see [`Store::mark_session`]). Returns one answer
    /// per input, in order: true when this call cleared it, or found it
    /// cleared by the same `unmark_id` (a repeat). `concurrency` as for
    /// [`Store::mark_sessions`].
    async fn unmark_sessions(
        &self,
        tenant: Uuid,
        unmarks: &[SessionUnmark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>>;

    /// Apply a reconcile outcome to a session in one atomic step with its audit
    /// event and the plan counters. Holds only if the session is still at
    /// `change.expected_revision` and matches `change.expect`; bumps the revision.
    /// Returns `false` (nothing written) when it does not.
    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool>;

    /// Audit events of a plan, oldest first.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage>;

    /// Count a runtime's outcome report on the plan that last migrated the
    /// session (each applied migration records which plan and when, kept as
    /// long as audit events): once per session and plan, atomically with the
    /// plan's `reported_outcomes` / `reported_failures`.
    async fn report_outcome(&self, report: &OutcomeReport) -> StoreResult<OutcomeRecorded>;

    /// Delete up to `limit` items whose retention ([`Retention`]) ended before
    /// `now`; returns how many. Backends with native expiry (DynamoDB's TTL)
    /// delete on their own and return 0.
    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        let _ = (now, limit);
        Ok(0)
    }
}
