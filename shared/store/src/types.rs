//! Request and result types of the [`crate::Store`] contract.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use planning::lifecycle::StatusChange;
use planning::{
    MigrationPlanSummaryItem, MigrationScenario, PlanStatus, ReconciliationAction, ScenarioVersion,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct PlanQuery {
    pub tenant: Uuid,
    pub scenario_id: Option<Uuid>,
    pub status: Option<PlanStatus>,
    /// 1..=100, validated by the caller.
    pub limit: usize,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanPage {
    pub plans: Vec<MigrationPlanSummaryItem>,
    pub total: u64,
    pub next_token: Option<String>,
}

/// A status change of a plan ([`planning::lifecycle`] decides it is legal and
/// what it stamps), conditioned on the plan being at `change.from` and
/// `expected_revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTransition {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    pub expected_revision: u64,
    pub change: StatusChange,
    /// A ramp's change to the scenario, written in the same atomic step.
    pub rollout: Option<RolloutMove>,
}

/// What a ramp changes on the scenario: the partial rollout recorded with its
/// current version widens to `percent`; at 100 the plan's to-version becomes
/// current and the partial rollout is gone. Holds only while the scenario is
/// at `from_version` with this plan's partial rollout.
///
/// `withdraw`: the end of a withdrawal instead — the plan's partial rollout is
/// removed, or if its version had become current, `from_version` is current
/// again (when the scenario moved on since, it is left as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutMove {
    pub scenario_id: Uuid,
    pub from_version: i64,
    pub to_version: i64,
    pub percent: u8,
    pub withdraw: bool,
}

/// A scenario's current version and the partial rollout leaving it, if any:
/// what reconcile reads on every call (no definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioHead {
    pub current_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<planning::PartialRollout>,
}

impl ScenarioHead {
    /// The head once `plan_id` (from `from_version` to `to_version`) reaches
    /// `percent` of the sessions: the partial rollout recorded beside the
    /// unchanged version, or at 100 the new version current.
    pub fn rolled_out(from_version: i64, to_version: i64, plan_id: Uuid, percent: u8) -> Self {
        if percent < 100 {
            ScenarioHead {
                current_version: from_version,
                rollout: Some(planning::PartialRollout {
                    plan_id,
                    to_version,
                    percent,
                }),
            }
        } else {
            ScenarioHead {
                current_version: to_version,
                rollout: None,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanActivation {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    pub expected_revision: u64,
    pub scenario_id: Uuid,
    pub from_version: i64,
    /// The V2 definition that becomes current (its `version` is the plan's `to_version`).
    pub target: ScenarioVersion,
    pub at: DateTime<Utc>,
    /// The rollout guard the deploy gave, stored on the plan.
    pub guard: Option<planning::RolloutGuard>,
    /// The share of sessions the rollout reaches, 1–100. Below 100 the
    /// scenario's current version stays `from_version` and the partial rollout
    /// is recorded beside it.
    pub percent: u8,
    /// Who deploys, for the plan's history.
    pub by: Option<String>,
}

impl PlanActivation {
    /// The deploy as the plan's history records it, the plan then at `revision`.
    pub fn record(&self, revision: u64) -> planning::TransitionRecord {
        planning::TransitionRecord {
            from: PlanStatus::Approved,
            to: PlanStatus::Deploying,
            at: self.at,
            revision,
            by: self.by.clone(),
            reason: None,
            percent: Some(self.percent),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The plan is no longer approved at the expected revision.
    #[error("the plan changed concurrently")]
    PlanChanged,
    /// The scenario's current version is no longer the plan's `from_version`.
    #[error("the scenario moved to another version")]
    ScenarioMoved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Progress and outcome counters of one plan. All exact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanStats {
    pub sessions_marked: u64,
    pub sessions_by_anchor: BTreeMap<String, u64>,
    pub chains_total: u64,
    pub chains_done: u64,
    pub pages_recorded: u64,
    pub pages_failed: u64,
    pub migrations_applied: u64,
    /// Applied migrations of sessions that had been marked (pending = marked − this).
    pub flagged_applied: u64,
    pub clean_graft: u64,
    pub gap_fill: u64,
    pub re_route: u64,
    pub checkpoint_blocks: u64,
    /// Applied migrations that ended the conversation (`exit_scenario`): the
    /// rollout guard's exit rate.
    #[serde(default)]
    pub exits: u64,
    pub last_migration_at: Option<DateTime<Utc>>,
    /// When marking started (chains registered); `None` before, e.g. when a
    /// process died between activation and the first page.
    #[serde(default)]
    pub marking_started_at: Option<DateTime<Utc>>,
    /// When a page was last recorded or a chain started or resumed.
    #[serde(default)]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// Chains resumed after their lease ran out (deploy called again, or the sweep).
    #[serde(default)]
    pub resumptions: u64,
    /// The last marking pass started (0: the deploy's; one more per ramp).
    #[serde(default)]
    pub marking_pass: u32,
    /// Outcomes the runtime reported for sessions this plan migrated.
    #[serde(default)]
    pub reported_outcomes: u64,
    /// Of those, the ones reported failed: the guard's reported failure rate.
    #[serde(default)]
    pub reported_failures: u64,
    /// Flags a withdrawal cleared before they were applied.
    #[serde(default)]
    pub flags_withdrawn: u64,
}

impl PlanStats {
    /// Flagged sessions still waiting for their migration: marked, neither
    /// applied nor withdrawn.
    pub fn migrations_pending(&self) -> u64 {
        self.sessions_marked
            .saturating_sub(self.flagged_applied)
            .saturating_sub(self.flags_withdrawn)
    }
}

/// One flag a withdrawal clears: the arguments of [`crate::Store::unmark_sessions`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUnmark {
    pub session_id: String,
    /// The plan whose flag is cleared (only its flag is).
    pub plan_id: Uuid,
    /// The withdrawal page's own id for its clearings: a repeat recognises
    /// the clearing it made before (an answer lost, a redelivery).
    pub unmark_id: String,
}

/// A runtime's report of how a migrated session fared: counted against the
/// plan that last migrated the session, once, if that was at `window_start` or
/// later.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeReport {
    pub tenant: Uuid,
    pub session_id: String,
    pub ok: bool,
    pub window_start: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// What an outcome report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRecorded {
    /// Counted on this plan's counters now.
    Counted { plan_id: Uuid },
    /// This session's outcome for this plan was reported before: not counted again.
    AlreadyReported { plan_id: Uuid },
    /// No migration was applied to the session within the window.
    NoRecentMigration,
}

/// One page of marking, as recorded in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkedPage {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    /// Stable identity of the page (chain + cursor), the ledger key.
    pub page_id: String,
    /// The chain (its V1 step, step-index shard and marking pass) the page belongs to.
    pub chain_step: Uuid,
    pub chain_shard: u32,
    pub chain_pass: u32,
    /// The page's own cursor: the chain must stand exactly there.
    pub cursor: Option<String>,
    /// Where the chain continues; `None` ends the chain.
    pub next_cursor: Option<String>,
    pub sessions_marked: u64,
    /// Flags the page cleared (a withdrawal's pages; 0 for marking pages).
    pub flags_withdrawn: u64,
    /// anchor content hash → sessions marked in this page.
    pub by_anchor: BTreeMap<String, u64>,
    pub at: DateTime<Utc>,
}

impl MarkedPage {
    /// True when this page ends its chain (no continuation).
    pub fn completes_chain(&self) -> bool {
        self.next_cursor.is_none()
    }
}

/// A marking chain (the sessions of one V1 step in one shard of the step
/// index) registered when marking starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStart {
    pub step_id: Uuid,
    /// The step-index shard this chain walks, `0..shards`.
    pub shard: u32,
    /// How many shards the plan's marking uses (the store's
    /// [`crate::Store::step_index_shards`] when marking started): fixed for the
    /// deployment, whatever the configuration says later.
    pub shards: u32,
    /// The anchor whose policy applies (`None`: a deleted step without anchor).
    pub anchor_content_hash: Option<String>,
    /// The marking pass (0: the deploy's; one more per ramp): each pass walks
    /// its own chains.
    pub pass: u32,
    /// The share of sessions the pass marks (its cohort), 1–100.
    pub percent: u8,
}

/// Which chain: its V1 step, step-index shard and marking pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainKey {
    pub step_id: Uuid,
    pub shard: u32,
    pub pass: u32,
}

impl ChainState {
    pub fn key(&self) -> ChainKey {
        ChainKey {
            step_id: self.step_id,
            shard: self.shard,
            pass: self.pass,
        }
    }
}

/// Where one chain's marking stands. Pages of a chain are recorded in order:
/// a page is recorded only while the chain stands at its cursor, so two walks of
/// the same chain (a redelivery, a resumption racing a slow worker) never both
/// count, and the chain can always be resumed from `cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    pub step_id: Uuid,
    /// Chains registered before the step index was sharded read as shard 0 of 1.
    #[serde(default)]
    pub shard: u32,
    #[serde(default = "one_shard")]
    pub shards: u32,
    #[serde(default)]
    pub anchor_content_hash: Option<String>,
    #[serde(default)]
    pub pass: u32,
    #[serde(default = "all_sessions")]
    pub percent: u8,
    /// Cursor of the next page to mark (`None` with `!done`: the first page).
    #[serde(default)]
    pub cursor: Option<String>,
    pub done: bool,
    /// When the chain started, last recorded a page, or was resumed: its lease.
    pub updated_at: DateTime<Utc>,
    /// How often it was resumed after its lease ran out.
    #[serde(default)]
    pub resumptions: u64,
}

fn one_shard() -> u32 {
    1
}

fn all_sessions() -> u8 {
    100
}

/// One shard of the sessions at one step: the step index is write-sharded
/// (see [`crate::step_shard`]), so a step's sessions are read shard by shard.
#[derive(Debug, Clone, PartialEq)]
pub struct StepQuery {
    pub tenant: Uuid,
    pub scenario_id: Uuid,
    pub version: i64,
    pub step_id: Uuid,
    /// `0..` the store's [`crate::Store::step_index_shards`].
    pub shard: u32,
    pub limit: usize,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
}

impl StepQuery {
    /// Whether `session` sits at the step this query reads (a session read by
    /// id after the index page may have moved on since).
    pub fn finds(&self, session: &planning::Session) -> bool {
        session.tenant_id == self.tenant
            && session.active_scenario_id == self.scenario_id
            && session.active_scenario_version == self.version
            && session.active_step_id == self.step_id
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<planning::Session>,
    pub next_cursor: Option<String>,
}

/// Where a session is expected to be for a conditional write to hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPosition {
    pub scenario_id: Uuid,
    pub version: i64,
    pub step_id: Uuid,
}

/// One flag write of a marking page: the arguments of [`crate::Store::mark_session`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMark {
    pub session_id: String,
    pub expected: SessionPosition,
    pub pending: planning::PendingMigration,
    /// The marking page's own id for its flags: the same for every delivery
    /// of the page, so a delivery recognises flags another one (or an earlier
    /// attempt whose answer was lost) set for the same page.
    pub mark_id: String,
}

/// The sessions a marking page covers and where its chain goes next, fixed by
/// the first delivery that claims the page ([`crate::Store::claim_page`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageClaim {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    /// The page's id (chain + cursor), as in the ledger.
    pub page_id: String,
    pub session_ids: Vec<String>,
    pub next_cursor: Option<String>,
    pub at: DateTime<Utc>,
}

/// The client's precondition on a runtime write (`If-Match` / `If-None-Match: *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionPrecondition {
    /// Last writer wins for the runtime's own fields.
    #[default]
    None,
    /// The session must exist at exactly this revision (`If-Match`).
    Revision(u64),
    /// The session must exist, at any revision (`If-Match: *`).
    Exists,
    /// The session must not exist yet (`If-None-Match: *`).
    Absent,
}

/// The conversation runtime's write of a session (`PUT /sessions/{id}`).
///
/// Only the runtime's fields are taken from `session`; what this product owns
/// (`pending_migration`, `pinned_version`) and what the store sets (`revision`,
/// `created_at` of an existing session unless `created_at` is given) are decided
/// by [`crate::Store::write_session`] against the stored session, atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionWrite {
    pub session: planning::Session,
    /// Explicit `created_at` from the client (imports of older sessions).
    pub created_at: Option<DateTime<Utc>>,
    pub precondition: SessionPrecondition,
}

/// What [`crate::Store::write_session`] stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenSession {
    pub session: planning::Session,
    /// No session existed before this write.
    pub created: bool,
}

/// Why a runtime write was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SessionWriteError {
    /// The precondition did not hold; `current` is the stored revision, if any.
    #[error("precondition failed")]
    PreconditionFailed { current: Option<u64> },
    /// The write would move the session back to an older version of its scenario.
    #[error("session is at version {current}; it never moves back to an older version")]
    VersionRegression { current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The precondition of a reconcile write.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionExpectation {
    /// The session's `pending_migration` names this plan.
    FlaggedBy(Uuid),
    /// The session has no flag, is not pinned, and sits at this version.
    UnflaggedAt { version: i64 },
}

/// What a reconcile writes to a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionChange {
    pub tenant: Uuid,
    pub session_id: String,
    pub expect: SessionExpectation,
    /// The revision the decision was made on: the write holds only if no one
    /// (runtime, marking, another reconcile) wrote the session since.
    pub expected_revision: u64,
    /// New version/step/checksum; `None` leaves the position unchanged.
    pub new_position: Option<NewPosition>,
    /// Set `pinned_version`.
    pub pin_version: Option<i64>,
    /// Remove `pending_migration` (every outcome except `collect`).
    pub clear_flag: bool,
    /// Variables to set (merged into the session's variables).
    pub set_variables: BTreeMap<String, serde_json::Value>,
    pub at: DateTime<Utc>,
    /// Present when the change applies a migration: written and counted atomically.
    pub applied: Option<AppliedMigration>,
    /// Plans that must be applying migrations (`deploying` or `deployed`) when
    /// the change is written, checked in the same atomic write: a pause stored
    /// before it stops it ([`StoreError::PlanNotApplying`]), whatever the
    /// caller read earlier.
    pub require_applying: Vec<Uuid>,
    /// The scenario head the decision was made on, when the change moves the
    /// session to another version: a head changed since (a withdrawal
    /// finished, a ramp) makes the write not hold (`false`, decide again).
    pub expect_head: Option<HeadExpectation>,
}

/// What a reconcile write expects of the scenario head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadExpectation {
    pub scenario_id: Uuid,
    pub current_version: i64,
    /// The plan of the partial rollout recorded there (`None`: none).
    pub rollout_plan: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewPosition {
    pub version: i64,
    pub step_id: Uuid,
    pub checksum: String,
}

/// The audit record of one applied migration; the plan counters derive from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub plan_id: Uuid,
    pub session_id: String,
    pub scenario_id: Uuid,
    pub from_version: i64,
    pub to_version: i64,
    pub migration_scenario: Option<MigrationScenario>,
    pub action: ReconciliationAction,
    pub step_before: Uuid,
    pub step_after: Uuid,
    /// field → source ("known_fields", "extraction", "variables").
    pub fields_filled: BTreeMap<String, String>,
    pub fields_asked: Vec<String>,
    pub blocked_by_checkpoint: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppliedMigration {
    pub event: AuditEvent,
    /// Whether the session had been marked at deploy (decrements pending).
    pub was_flagged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    pub limit: usize,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<AuditEvent>,
    pub next_token: Option<String>,
}

/// How long what a deployment leaves behind is kept. DynamoDB deletes it through
/// its TTL attribute (`ttl`, epoch seconds, on the main table); the embedded and
/// in-memory stores delete it in [`crate::Store::sweep_expired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A deployed plan (head, bodies, counters, chains, listing entry), counted
    /// from `deployed_at`. Composite migrations that meet a deleted plan fall back
    /// to relocation by content hash.
    pub deployed_plan_days: u32,
    /// Marking ledger items (one per page), counted from when the page was recorded.
    pub ledger_days: u32,
    /// Audit events, counted from the event.
    pub event_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            deployed_plan_days: 400,
            ledger_days: 30,
            event_days: 400,
        }
    }
}

impl Retention {
    pub(crate) fn until(at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        at + chrono::Duration::days(i64::from(days))
    }
}

/// A plan with lifecycle events to send (or a drain to watch for): written
/// with each of the plan's changes, settled by whoever sends the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxEntry {
    pub tenant: Uuid,
    pub plan_id: Uuid,
    /// The plan's revision at its latest change.
    pub revision: u64,
    /// The revision up to which its events were sent (0: none yet).
    pub published: u64,
}
