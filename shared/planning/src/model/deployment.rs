//! Deployment results and progress.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::plan::PlanStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentResult {
    pub plan_id: Uuid,
    pub status: PlanStatus,
    pub sessions_marked: u64,
    pub sessions_by_anchor: BTreeMap<String, u64>,
    #[serde(default)]
    pub deployed_at: Option<DateTime<Utc>>,
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
}

fn all_sessions() -> u8 {
    100
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationsByScenario {
    pub clean_graft: u64,
    pub gap_fill: u64,
    pub re_route: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentStatus {
    pub plan_id: Uuid,
    pub status: PlanStatus,
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
    pub sessions_marked: u64,
    /// Migrations applied to sessions this deploy marked: never more than
    /// `sessions_marked`.
    pub migrations_applied: u64,
    pub migrations_pending: u64,
    /// Migrations applied to sessions that carried no flag: late arrivals, sessions
    /// recorded after the deploy, or reconciled before marking reached them.
    #[serde(default)]
    pub migrations_applied_unflagged: u64,
    pub migrations_by_scenario: MigrationsByScenario,
    pub checkpoint_blocks: u64,
    /// Applied migrations that ended the conversation (`exit_scenario`).
    #[serde(default)]
    pub migrations_exited: u64,
    /// Flags a withdrawal cleared before reconcile applied them.
    #[serde(default)]
    pub flags_withdrawn: u64,
    /// Outcomes the runtime reported for sessions this plan migrated
    /// (`POST /sessions/{id}/outcome`), and of those the failed ones.
    #[serde(default)]
    pub reported_outcomes: u64,
    #[serde(default)]
    pub reported_failures: u64,
    /// The rollout guard given at deploy, if any.
    #[serde(default)]
    pub guard: Option<super::plan::RolloutGuard>,
    /// While `halted`: the threshold crossed, with its figures.
    #[serde(default)]
    pub halt_reason: Option<String>,
    #[serde(default)]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_migration_at: Option<DateTime<Utc>>,
    /// Marking pages that exhausted their deliveries (sent to the dead-letter
    /// queue). While it is non-zero and the plan is `deploying`, marking waits
    /// for those pages to be re-driven; it never decreases (a history count).
    #[serde(default)]
    pub pages_failed: u64,
    /// When marking last made progress (a page recorded, a chain started or
    /// resumed); a `deploying` plan whose progress is older than the lease is
    /// resumed by the next deploy call or sweep.
    #[serde(default)]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// Marking chains resumed after they stalled (a process died, a store error).
    #[serde(default)]
    pub resumptions: u64,
    /// How fast the flagged sessions migrate, and when the last will have.
    #[serde(default)]
    pub drain: Drain,
}

/// The pace of a rollout's flagged sessions (`migrations_applied` counts them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Drain {
    /// Flagged sessions migrated in the current minute and the 59 before it.
    pub applied_last_hour: u64,
    /// When the last pending session will have migrated at the last hour's
    /// pace; absent when nothing is pending, nothing migrated in the last
    /// hour, or the plan applies nothing now (paused, halted, withdrawing…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    /// Those migrations per minute, oldest first; minutes with none are left out.
    #[serde(default)]
    pub applied_per_minute: Vec<AppliedInMinute>,
    /// The pending sessions by how long ago their conversation was last
    /// active: the ones gone quiet migrate only if they come back.
    #[serde(default)]
    pub pending_by_last_activity: PendingByLastActivity,
}

/// Pending flagged sessions by the UTC calendar day of their last activity
/// (the session's `updated_at`), counted as sessions are written: today, 1 to
/// 6 days ago, 7 to 29 days ago, 30 days ago or more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingByLastActivity {
    pub under_1d: u64,
    pub from_1d_to_7d: u64,
    pub from_7d_to_30d: u64,
    pub over_30d: u64,
}

/// Pending flagged sessions of a plan whose last activity was on `day` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOnDay {
    pub day: chrono::NaiveDate,
    pub sessions: u64,
}

/// Flagged sessions a plan migrated in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppliedInMinute {
    /// The minute's start (UTC).
    pub minute: DateTime<Utc>,
    pub applied: u64,
}
