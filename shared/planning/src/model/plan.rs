//! Migration plans: their status, the offline computation, the stored plan and its list item.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::policy::AnchorMigrationPolicy;
use super::summary::MigrationSummary;
use super::transformation::TransformationMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    Approved,
    Deploying,
    Deployed,
    /// An operator paused a deploying or deployed plan: marking and applying
    /// stop, flags stay; `resume` returns it to the status it was paused in.
    Paused,
    /// The rollout guard halted a deploying or deployed plan (`halt_reason` says
    /// which threshold, with its figures): like `paused` until resumed.
    Halted,
    /// An operator withdrew the rollout: every flag not yet applied is being
    /// cleared (a paged walk like marking); nothing more is applied.
    Withdrawing,
    /// Every unapplied flag is cleared; sessions already migrated stay, and the
    /// from-version is current again.
    Withdrawn,
    Rejected,
    Superseded,
    /// A pending or approved plan read after its `expires_at`: it can no longer
    /// be approved or deployed, and it frees its version pair for a new plan.
    Expired,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::Approved => "approved",
            PlanStatus::Deploying => "deploying",
            PlanStatus::Deployed => "deployed",
            PlanStatus::Paused => "paused",
            PlanStatus::Halted => "halted",
            PlanStatus::Withdrawing => "withdrawing",
            PlanStatus::Withdrawn => "withdrawn",
            PlanStatus::Rejected => "rejected",
            PlanStatus::Superseded => "superseded",
            PlanStatus::Expired => "expired",
        }
    }

    /// A live plan blocks another plan for the same version pair.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            PlanStatus::Rejected
                | PlanStatus::Superseded
                | PlanStatus::Expired
                | PlanStatus::Withdrawn
        )
    }

    /// A plan whose chains are being walked (marking, or a withdrawal's
    /// clearing): the periodic sweep resumes it.
    pub fn walks_chains(self) -> bool {
        matches!(self, PlanStatus::Deploying | PlanStatus::Withdrawing)
    }
}

/// The offline part of a plan: what `migrations plan` prints and what the API
/// stores inside a `MigrationPlan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanComputation {
    pub scenario_checksum_v1: String,
    pub scenario_checksum_v2: String,
    pub transformation_map: TransformationMap,
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    pub summary: MigrationSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationPlan {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub from_version: i64,
    pub to_version: i64,
    pub scenario_checksum_v1: String,
    pub scenario_checksum_v2: String,
    pub transformation_map: TransformationMap,
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    pub summary: MigrationSummary,
    pub status: PlanStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub rejected_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rejected_by: Option<String>,
    #[serde(default)]
    pub rejection_reason: Option<String>,
    #[serde(default)]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// While `paused` or `halted`: the status `resume` returns to (`deploying` or `deployed`).
    #[serde(default)]
    pub paused_from: Option<PlanStatus>,
    /// The thresholds given at deploy that halt the rollout.
    #[serde(default)]
    pub guard: Option<RolloutGuard>,
    /// While `halted`: the threshold crossed and its figures.
    #[serde(default)]
    pub halt_reason: Option<String>,
    /// The share of sessions the rollout reaches, 1–100 (absent: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Marking passes after the first: one per ramp to a larger percent. Each
    /// pass has its own chains and ledger pages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollout_pass: u32,
    pub revision: u64,
    /// The plan's status changes, oldest first: who asked for each and when.
    /// The newest [`MAX_TRANSITIONS_KEPT`] are kept (a gap in `revision`
    /// shows where older ones were dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<TransitionRecord>,
}

/// Status changes a plan keeps in its history. A plan's item holds them, so
/// the history is bounded however often a rollout is paused and resumed
/// (each record is at most a few hundred bytes).
pub const MAX_TRANSITIONS_KEPT: usize = 50;

/// Longest actor name a record keeps, in characters. The API refuses longer
/// `by` fields; older actor fields (`approved_by`) are cut to this in the
/// history only.
pub const MAX_ACTOR_CHARS: usize = 200;

/// One status change in a plan's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransitionRecord {
    pub from: PlanStatus,
    pub to: PlanStatus,
    pub at: DateTime<Utc>,
    /// The plan's revision after the change.
    pub revision: u64,
    /// Who asked for it, as the request said (`by`, `approved_by`,
    /// `rejected_by`); absent when not given and for the changes the product
    /// makes itself (marking finished, a halt, a supersede, an expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// A halt's threshold and figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The share of sessions a deploy or a ramp set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

impl TransitionRecord {
    /// Appends `self` to `history`, dropping the oldest records past
    /// [`MAX_TRANSITIONS_KEPT`], with the actor cut to [`MAX_ACTOR_CHARS`].
    pub fn append_to(mut self, history: &mut Vec<TransitionRecord>) {
        self.by = self.by.map(|by| by.chars().take(MAX_ACTOR_CHARS).collect());
        history.push(self);
        let excess = history.len().saturating_sub(MAX_TRANSITIONS_KEPT);
        history.drain(..excess);
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl MigrationPlan {
    /// The share of sessions the rollout reaches, 1–100.
    pub fn rollout_percent(&self) -> u8 {
        self.percent.unwrap_or(100)
    }
}

/// Thresholds over a plan's applied migrations that halt its rollout (status
/// `halted`, in one conditional write) once `min_sessions` migrations have been
/// applied. A rate is a fraction from 0 to 1; an absent one is not checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolloutGuard {
    /// Most migrations that may end the conversation (`exit_scenario`), as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exit_rate: Option<f64>,
    /// Most migrations a checkpoint may block, as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_checkpoint_block_rate: Option<f64>,
    /// Most migrated sessions the runtime may report failed
    /// (`POST /sessions/{id}/outcome`), as a fraction of the applied migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reported_failure_rate: Option<f64>,
    /// Applied migrations before any threshold is checked.
    #[serde(default = "default_min_sessions")]
    pub min_sessions: u64,
}

fn default_min_sessions() -> u64 {
    50
}

/// The optional body of `POST …/deploy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The share of sessions to migrate, 1–100 (default 100). A plan already
    /// deployed at a smaller share ramps to this one.
    #[serde(default)]
    pub percent: Option<u8>,
    #[serde(default)]
    pub guard: Option<RolloutGuard>,
    /// Who deploys or ramps, for the plan's history (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub by: Option<String>,
}

impl PlanStatus {
    /// A plan whose migrations reconcile applies. A paused plan is activated
    /// too (its flags, its place in the version chain) but applies nothing;
    /// so is one being withdrawn, until its flags are cleared.
    pub fn is_activated(self) -> bool {
        matches!(
            self,
            PlanStatus::Deploying
                | PlanStatus::Deployed
                | PlanStatus::Paused
                | PlanStatus::Halted
                | PlanStatus::Withdrawing
        )
    }

    /// An activated plan that applies migrations now.
    pub fn applies_migrations(self) -> bool {
        matches!(self, PlanStatus::Deploying | PlanStatus::Deployed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationPlanSummaryItem {
    pub id: Uuid,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub from_version: i64,
    pub to_version: i64,
    pub status: PlanStatus,
    pub total_anchors: u64,
    pub estimated_sessions_affected: u64,
    pub warning_count: u64,
    pub created_at: DateTime<Utc>,
}

impl MigrationPlanSummaryItem {
    pub fn of(plan: &MigrationPlan) -> Self {
        MigrationPlanSummaryItem {
            id: plan.id,
            scenario_id: plan.scenario_id,
            scenario_name: plan.scenario_name.clone(),
            from_version: plan.from_version,
            to_version: plan.to_version,
            status: plan.status,
            total_anchors: plan.summary.total_anchors,
            estimated_sessions_affected: plan.summary.estimated_sessions_affected,
            warning_count: plan.summary.warnings.len() as u64,
            created_at: plan.created_at,
        }
    }
}
