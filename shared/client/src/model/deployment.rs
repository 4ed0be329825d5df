//! Deployments: the deploy request and its guard, the answers and counters, applied migrations' audit events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::diff::MigrationScenario;
use super::plan::{PlanStatus, RolloutGuard};
use super::session::ReconciliationAction;

/// One applied migration (the store's `AuditEvent`, as `GET …/events` returns
/// it); a test of the OpenAPI document (`audit_event_schema_matches_the_store_type`) keeps the two in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub action: ReconciliationAction,
    pub at: DateTime<Utc>,
    pub blocked_by_checkpoint: bool,
    pub event_id: Uuid,
    pub fields_asked: Vec<String>,
    /// field → where its value came from (`known_fields`, `extraction`, `variables`).
    pub fields_filled: BTreeMap<String, String>,
    pub from_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_scenario: Option<MigrationScenario>,
    pub plan_id: Uuid,
    pub scenario_id: Uuid,
    pub session_id: String,
    pub step_after: Uuid,
    pub step_before: Uuid,
    pub tenant_id: Uuid,
    pub to_version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
    pub plan_id: Uuid,
    pub sessions_by_anchor: BTreeMap<String, u64>,
    pub sessions_marked: u64,
    pub status: PlanStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
    /// Flags a withdrawal cleared before reconcile applied them.
    #[serde(default)]
    pub flags_withdrawn: u64,
    pub checkpoint_blocks: u64,
    /// Applied migrations that ended the conversation (`exit_scenario`).
    #[serde(default)]
    pub migrations_exited: u64,
    /// Outcomes the runtime reported for sessions this plan migrated, and of
    /// those the failed ones.
    #[serde(default)]
    pub reported_outcomes: u64,
    #[serde(default)]
    pub reported_failures: u64,
    /// The rollout guard given at deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
    /// While `halted`: the threshold crossed, with its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_migration_at: Option<DateTime<Utc>>,
    /// When marking last made progress (a page recorded, a chain started or
    /// resumed); a `deploying` plan whose progress is older than the lease is
    /// resumed by the next deploy call or sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// Migrations applied to sessions this deploy marked: never more than
    /// `sessions_marked`.
    pub migrations_applied: u64,
    /// Migrations applied to sessions that carried no flag: late arrivals, sessions
    /// recorded after the deploy, or reconciled before marking reached them.
    #[serde(default)]
    pub migrations_applied_unflagged: u64,
    pub migrations_by_scenario: MigrationsByScenario,
    pub migrations_pending: u64,
    /// Marking pages that exhausted their deliveries (sent to the dead-letter
    /// queue). While it is non-zero and the plan is `deploying`, marking waits
    /// for those pages to be re-driven; it never decreases (a history count).
    #[serde(default)]
    pub pages_failed: u64,
    pub plan_id: Uuid,
    /// Marking chains resumed after they stalled (a process died, a store error).
    #[serde(default)]
    pub resumptions: u64,
    pub sessions_marked: u64,
    pub status: PlanStatus,
    /// How fast the flagged sessions migrate, and when the last will have.
    #[serde(default)]
    pub drain: Drain,
}

/// The pace of a rollout's flagged sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    /// Flagged sessions migrated in the current minute and the 59 before it.
    pub applied_last_hour: u64,
    /// When the last pending session will have migrated at the last hour's
    /// pace (absent: nothing pending, no pace, or the plan applies nothing now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    /// Those migrations per minute, oldest first (minutes with none left out).
    #[serde(default)]
    pub applied_per_minute: Vec<AppliedInMinute>,
    /// The pending sessions by how long ago they were last active.
    #[serde(default)]
    pub pending_by_last_activity: PendingByLastActivity,
}

/// Pending flagged sessions by the UTC day of their last activity: today, 1
/// to 6 days ago, 7 to 29, 30 or more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingByLastActivity {
    pub under_1d: u64,
    pub from_1d_to_7d: u64,
    pub from_7d_to_30d: u64,
    pub over_30d: u64,
}

/// Flagged sessions a plan migrated in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedInMinute {
    /// The minute's start (UTC).
    pub minute: DateTime<Utc>,
    pub applied: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<AuditEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationsByScenario {
    pub clean_graft: u64,
    pub gap_fill: u64,
    pub re_route: u64,
}

/// The optional body of `POST /migration-plans/{id}/deploy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The share of sessions to migrate, 1–100 (default 100); a plan deployed
    /// at a smaller share ramps to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
    /// Who deploys, for the plan's history (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The optional body of `POST /migration-plans/{id}/pause`, `…/resume` and
/// `…/withdraw`: who asks, for the plan's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutCommandRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

fn all_sessions() -> u8 {
    100
}
