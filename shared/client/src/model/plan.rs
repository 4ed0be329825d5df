//! Migration plans: the plan, its listing and summary, per-anchor policies, the review requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::diff::{AnchorTransformation, MigrationScenario, TransformationMap};
use super::scenario::ScenarioInput;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorMigrationPolicy {
    pub anchor_content_hash: String,
    pub anchor_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_step_behavior: Option<EditedStepBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_scenario: Option<MigrationScenario>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_filter: Option<ScopeFilter>,
    #[serde(default)]
    pub update_downstream: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorPage {
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    pub anchors: Vec<AnchorTransformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovePlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// Which version a plan diagram draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagramSide {
    V1,
    V2,
}

/// How sessions waiting at an edited step migrate (a policy choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditedStepBehavior {
    Stay,
    RelocateToNearestAnchor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldCollectionInfo {
    #[serde(default)]
    pub affected_anchors: Vec<String>,
    #[serde(default)]
    pub can_extract_from_conversation: bool,
    pub display_name: String,
    pub field_name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateMigrationPlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub new_scenario: ScenarioInput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    /// Present when the plan was too large to return whole: the anchors above are
    /// the first page, `GET /migration-plans/{id}/anchors` returns the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors_next_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub from_version: i64,
    pub id: Uuid,
    /// The status a paused or halted plan returns to when resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<PlanStatus>,
    /// The rollout guard given at deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
    /// While `halted`: the threshold crossed, with its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// The share of sessions the rollout reaches, 1–100 (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Marking passes after the deploy's: one per ramp.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollout_pass: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub revision: u64,
    pub scenario_checksum_v1: String,
    pub scenario_checksum_v2: String,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub status: PlanStatus,
    pub summary: MigrationSummary,
    pub tenant_id: Uuid,
    pub to_version: i64,
    pub transformation_map: TransformationMap,
    /// The plan's status changes, oldest first (the newest 50 are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<TransitionRecord>,
}

/// One status change in a plan's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub from: PlanStatus,
    pub to: PlanStatus,
    pub at: DateTime<Utc>,
    /// The plan's revision after the change.
    pub revision: u64,
    /// Who asked for it (absent when not given, and for the changes the
    /// service makes itself: marking finished, a halt, an expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// A halt's threshold and figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The share of sessions a deploy or a ramp set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlanSummaryItem {
    pub created_at: DateTime<Utc>,
    pub estimated_sessions_affected: u64,
    pub from_version: i64,
    pub id: Uuid,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub status: PlanStatus,
    pub to_version: i64,
    pub total_anchors: u64,
    pub warning_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationSummary {
    pub anchors_with_clean_graft: u64,
    pub anchors_with_gap_fill: u64,
    pub anchors_with_re_route: u64,
    pub estimated_sessions_affected: u64,
    #[serde(default)]
    pub fields_to_collect: Vec<FieldCollectionInfo>,
    /// Deleted steps, edited steps excluded (they are listed in `deleted_nodes` too).
    pub nodes_deleted: u64,
    #[serde(default)]
    pub sessions_by_anchor: BTreeMap<String, u64>,
    /// How fresh the session counts above are: every session change up to this
    /// time is counted (the store's session counts, read when the plan was
    /// generated; on DynamoDB they trail the sessions table's stream). Absent
    /// when no counts were read (offline plans) or none were ever recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_counted_at: Option<DateTime<Utc>>,
    /// Steps edited in place (`transformation_map.edited_steps`).
    #[serde(default)]
    pub steps_edited: u64,
    pub total_anchors: u64,
    #[serde(default)]
    pub warnings: Vec<MigrationWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationWarning {
    #[serde(default)]
    pub affected_sessions_estimate: u64,
    pub anchor_name: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub plans: Vec<MigrationPlanSummaryItem>,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    Approved,
    Deploying,
    Deployed,
    Paused,
    Halted,
    Withdrawing,
    Withdrawn,
    Rejected,
    Superseded,
    Expired,
}

/// Thresholds over a plan's applied migrations that halt its rollout once
/// `min_sessions` migrations have been applied (rates are fractions, 0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutGuard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exit_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_checkpoint_block_rate: Option<f64>,
    /// Most migrated sessions the runtime may report failed, as a fraction of
    /// the applied migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reported_failure_rate: Option<f64>,
    #[serde(default = "default_min_sessions")]
    pub min_sessions: u64,
}

fn default_min_sessions() -> u64 {
    50
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectPlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeFilter {
    #[serde(default)]
    pub custom_conditions: Vec<String>,
    #[serde(default)]
    pub exclude_channels: Vec<String>,
    #[serde(default)]
    pub exclude_current_nodes: Vec<String>,
    #[serde(default)]
    pub include_channels: Vec<String>,
    #[serde(default)]
    pub include_current_nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_age_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_session_age_days: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatePoliciesRequest {
    pub policies: BTreeMap<String, AnchorMigrationPolicy>,
}
