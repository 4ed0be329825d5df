//! Domain types with the JSON names of the SPEC and the seed API.
//!
//! Inputs (`ScenarioInput` and everything a client posts) reject unknown fields;
//! stored/output types are lenient on read so that older items keep deserialising.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub type ContentHash = String;

// ---------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransitionInput {
    pub to_step_id: Uuid,
    #[serde(default)]
    pub condition_text: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub condition_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub transitions: Vec<TransitionInput>,
    #[serde(default)]
    pub rule_ids: Vec<Uuid>,
    #[serde(default)]
    pub collects_profile_fields: Vec<String>,
    #[serde(default)]
    pub is_checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_description: Option<String>,
    #[serde(default)]
    pub is_entry: bool,
    #[serde(default)]
    pub is_terminal: bool,
    #[serde(default)]
    pub performs_action: bool,
    #[serde(default)]
    pub is_required_action: bool,
}

/// A scenario definition as a client submits it (one version, without ids that
/// the server owns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScenarioInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version: i64,
    pub entry_step_id: Uuid,
    pub steps: Vec<StepInput>,
}

/// A stored scenario version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScenarioVersion {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub version: i64,
    pub entry_step_id: Uuid,
    pub steps: Vec<StepInput>,
    pub checksum: String,
    pub created_at: DateTime<Utc>,
}

impl ScenarioVersion {
    /// The definition as a client would submit it (what plans diff and checksums cover).
    pub fn definition(&self) -> ScenarioInput {
        ScenarioInput {
            name: self.name.clone(),
            description: self.description.clone(),
            version: self.version,
            entry_step_id: self.entry_step_id,
            steps: self.steps.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepVisit {
    pub step_id: Uuid,
    #[serde(default)]
    pub step_name: String,
    pub visited_at: DateTime<Utc>,
    #[serde(default)]
    pub is_checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingMigration {
    pub migration_plan_id: Uuid,
    pub target_version: i64,
    pub anchor_content_hash: String,
    pub from_step_id: Uuid,
    pub marked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub session_id: String,
    pub tenant_id: Uuid,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub active_scenario_id: Uuid,
    pub active_scenario_version: i64,
    pub active_step_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_checksum: Option<String>,
    #[serde(default)]
    pub step_history: Vec<StepVisit>,
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_migration: Option<PendingMigration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// +1 on every write by anyone (runtime, marking, reconcile); also the `ETag`.
    /// Items written before revisions existed read as 0.
    #[serde(default)]
    pub revision: u64,
}

/// What the runtime sends to `PUT /sessions/{session_id}`.
///
/// It accepts the representation `GET /sessions/{id}` returns, so a runtime can
/// read, modify and write back: `session_id` and `tenant_id` must then match the
/// path and the tenant header, and the product-owned and server-set fields
/// (`pending_migration`, `pinned_version`, `updated_at`, `revision`) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionInput {
    /// Must equal the path's session id when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Must equal the `X-Tenant-ID` header when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    pub channel: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    pub active_scenario_id: Uuid,
    pub active_scenario_version: i64,
    pub active_step_id: Uuid,
    #[serde(default)]
    pub scenario_checksum: Option<String>,
    #[serde(default)]
    pub step_history: Vec<StepVisit>,
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Defaults to now on first write; lets the runtime import older sessions.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Read-only (written by marking and reconcile): accepted and ignored.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub pending_migration: Option<serde::de::IgnoredAny>,
    /// Read-only (written by reconcile): accepted and ignored.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub pinned_version: Option<serde::de::IgnoredAny>,
    /// Server-set: accepted and ignored.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub updated_at: Option<serde::de::IgnoredAny>,
    /// Server-set (use `If-Match` to write conditionally): accepted and ignored.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub revision: Option<serde::de::IgnoredAny>,
}

// ---------------------------------------------------------------------------
// Transformation map
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MigrationScenario {
    CleanGraft,
    GapFill,
    ReRoute,
}

impl MigrationScenario {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationScenario::CleanGraft => "clean_graft",
            MigrationScenario::GapFill => "gap_fill",
            MigrationScenario::ReRoute => "re_route",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsertedNode {
    pub node_id: Uuid,
    pub node_name: String,
    #[serde(default)]
    pub collects_fields: Vec<String>,
    #[serde(default)]
    pub has_rules: bool,
    #[serde(default)]
    pub is_required_action: bool,
    #[serde(default)]
    pub is_checkpoint: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForkBranch {
    pub target_step_id: Uuid,
    pub target_step_name: String,
    pub condition_text: String,
    #[serde(default)]
    pub condition_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewFork {
    pub fork_node_id: Uuid,
    pub fork_node_name: String,
    #[serde(default)]
    pub branches: Vec<ForkBranch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransitionChangeType {
    Added,
    Removed,
    Modified,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransitionChange {
    pub from_step_id: Uuid,
    #[serde(default)]
    pub to_step_id_v1: Option<Uuid>,
    #[serde(default)]
    pub to_step_id_v2: Option<Uuid>,
    pub change_type: TransitionChangeType,
}

/// Changes in one region (upstream or downstream) around an anchor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionChanges {
    #[serde(default)]
    pub inserted_nodes: Vec<InsertedNode>,
    #[serde(default)]
    pub removed_node_ids: Vec<Uuid>,
    #[serde(default)]
    pub new_forks: Vec<NewFork>,
    #[serde(default)]
    pub modified_transitions: Vec<TransitionChange>,
    /// Steps of the region edited in place (same id, other content): neither
    /// inserted nor removed. Absent from plans made before edits were recognised.
    #[serde(default)]
    pub edited_nodes: Vec<EditedNode>,
}

impl RegionChanges {
    pub fn is_empty(&self) -> bool {
        self.inserted_nodes.is_empty()
            && self.removed_node_ids.is_empty()
            && self.new_forks.is_empty()
            && self.modified_transitions.is_empty()
            && self.edited_nodes.is_empty()
    }
}

/// A step attribute an edit in place can change: the fields of the content hash,
/// and `is_required_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepAttribute {
    Name,
    Description,
    RuleIds,
    CollectsProfileFields,
    IsCheckpoint,
    CheckpointDescription,
    PerformsAction,
    IsRequiredAction,
}

impl StepAttribute {
    pub fn as_str(self) -> &'static str {
        match self {
            StepAttribute::Name => "name",
            StepAttribute::Description => "description",
            StepAttribute::RuleIds => "rule_ids",
            StepAttribute::CollectsProfileFields => "collects_profile_fields",
            StepAttribute::IsCheckpoint => "is_checkpoint",
            StepAttribute::CheckpointDescription => "checkpoint_description",
            StepAttribute::PerformsAction => "performs_action",
            StepAttribute::IsRequiredAction => "is_required_action",
        }
    }

    /// Words for the review: "collected fields", "checkpoint flag", …
    pub fn label(self) -> &'static str {
        match self {
            StepAttribute::Name => "name",
            StepAttribute::Description => "description",
            StepAttribute::RuleIds => "rules",
            StepAttribute::CollectsProfileFields => "collected fields",
            StepAttribute::IsCheckpoint => "checkpoint flag",
            StepAttribute::CheckpointDescription => "checkpoint description",
            StepAttribute::PerformsAction => "action flag",
            StepAttribute::IsRequiredAction => "required-action flag",
        }
    }
}

/// One changed attribute of an edited step, with its value in each version
/// (normalised as the content hash reads it: absent descriptions are `""`, rule
/// ids and fields sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributeChange {
    pub attribute: StepAttribute,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// An edited step as it appears in the region of another anchor (or edited step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditedNode {
    /// The same in both versions.
    pub node_id: Uuid,
    /// The name in the new version.
    pub node_name: String,
    #[serde(default)]
    pub changed: Vec<StepAttribute>,
    /// Fields the new version collects there and the old one did not: sessions
    /// that passed the step before the edit never gave them (gap fill).
    #[serde(default)]
    pub added_fields: Vec<String>,
    /// The edit makes it a required action and the old step performed no action:
    /// sessions that passed it before the edit owe it (gap fill).
    #[serde(default)]
    pub new_required_action: bool,
    #[serde(default)]
    pub is_checkpoint: bool,
}

impl EditedNode {
    /// Sessions that passed the step before the edit owe something: fields or an
    /// action (a gap fill).
    pub fn owes_something(&self) -> bool {
        !self.added_fields.is_empty() || self.new_required_action
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnchorTransformation {
    pub anchor_content_hash: String,
    pub anchor_name: String,
    pub anchor_node_id_v1: Uuid,
    pub anchor_node_id_v2: Uuid,
    #[serde(default)]
    pub upstream_changes: RegionChanges,
    #[serde(default)]
    pub downstream_changes: RegionChanges,
    pub migration_scenario: MigrationScenario,
}

/// A V1 step without a content partner. An edited step is listed here too (with
/// `edited: true`), for clients that only know deleted nodes: its
/// `nearest_anchor_hash` is the edited step's policy key and
/// `nearest_anchor_id_v2` its own (unchanged) id, so its sessions are marked and
/// migrated onto the edited step itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletedNode {
    pub node_id_v1: Uuid,
    pub node_name: String,
    #[serde(default)]
    pub nearest_anchor_hash: Option<String>,
    #[serde(default)]
    pub nearest_anchor_id_v2: Option<Uuid>,
    /// Not deleted: edited in place (see `TransformationMap::edited_steps`).
    #[serde(default)]
    pub edited: bool,
}

/// How sessions waiting at an edited step migrate (a policy choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EditedStepBehavior {
    /// Land on the edited step itself (same id), with the anchor machinery.
    #[default]
    Stay,
    /// What happened before edits were recognised: treat the step as deleted and
    /// continue from its nearest anchor.
    RelocateToNearestAnchor,
}

impl EditedStepBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            EditedStepBehavior::Stay => "stay",
            EditedStepBehavior::RelocateToNearestAnchor => "relocate_to_nearest_anchor",
        }
    }
}

/// A V1 step and a V2 step with the same id and different content, neither of
/// them paired by content: the same step, edited in place.
///
/// It migrates like an anchor: the flattened fields are those of an
/// [`AnchorTransformation`] whose `anchor_content_hash` is the edited step's
/// *policy key* (its V2 content hash when no other step has that content, else a
/// synthetic hash), `anchor_name` its V2 name, both node ids its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditedStep {
    #[serde(flatten)]
    pub step: AnchorTransformation,
    pub content_hash_v1: String,
    pub content_hash_v2: String,
    pub node_name_v1: String,
    #[serde(default)]
    pub changes: Vec<AttributeChange>,
    /// Where `relocate_to_nearest_anchor` sends its sessions: the nearest anchor as
    /// for a deleted step (edited steps are not candidates).
    #[serde(default)]
    pub nearest_anchor_hash: Option<String>,
    #[serde(default)]
    pub nearest_anchor_id_v2: Option<Uuid>,
}

impl EditedStep {
    /// The policy key (`anchor_content_hash` of the flattened anchor).
    pub fn key(&self) -> &str {
        &self.step.anchor_content_hash
    }

    pub fn changed(&self, attribute: StepAttribute) -> bool {
        self.changes.iter().any(|c| c.attribute == attribute)
    }

    /// The edit makes the step a checkpoint.
    pub fn becomes_checkpoint(&self) -> bool {
        self.changes.iter().any(|c| {
            c.attribute == StepAttribute::IsCheckpoint && c.after == serde_json::Value::Bool(true)
        })
    }

    /// The edit makes the step a required action.
    pub fn becomes_required_action(&self) -> bool {
        self.changes.iter().any(|c| {
            c.attribute == StepAttribute::IsRequiredAction
                && c.after == serde_json::Value::Bool(true)
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransformationMap {
    #[serde(default)]
    pub anchors: Vec<AnchorTransformation>,
    #[serde(default)]
    pub deleted_nodes: Vec<DeletedNode>,
    #[serde(default)]
    pub new_node_ids: Vec<Uuid>,
    /// Steps edited in place, in V2 flow order. Absent from older plans.
    #[serde(default)]
    pub edited_steps: Vec<EditedStep>,
}

impl TransformationMap {
    /// The anchor, or the edited step, whose policy key is `hash`.
    pub fn anchor_by_hash(&self, hash: &str) -> Option<&AnchorTransformation> {
        self.targets().find(|a| a.anchor_content_hash == hash)
    }

    /// The edited step whose policy key is `key`.
    pub fn edited_by_key(&self, key: &str) -> Option<&EditedStep> {
        self.edited_steps.iter().find(|e| e.key() == key)
    }

    /// Everything sessions migrate onto: the anchors, then the edited steps (as
    /// anchors keyed by their policy key).
    pub fn targets(&self) -> impl Iterator<Item = &AnchorTransformation> {
        self.anchors
            .iter()
            .chain(self.edited_steps.iter().map(|e| &e.step))
    }
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScopeFilter {
    #[serde(default)]
    pub include_channels: Vec<String>,
    #[serde(default)]
    pub exclude_channels: Vec<String>,
    #[serde(default)]
    pub include_current_nodes: Vec<String>,
    #[serde(default)]
    pub exclude_current_nodes: Vec<String>,
    #[serde(default)]
    pub max_session_age_days: Option<i64>,
    #[serde(default)]
    pub min_session_age_days: Option<i64>,
    #[serde(default)]
    pub custom_conditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnchorMigrationPolicy {
    pub anchor_content_hash: String,
    pub anchor_name: String,
    #[serde(default)]
    pub scope_filter: ScopeFilter,
    #[serde(default = "default_true")]
    pub update_downstream: bool,
    #[serde(default)]
    pub force_scenario: Option<MigrationScenario>,
    /// Only for an edited step's policy: `stay` (the default) lands its sessions
    /// on the edited step; `relocate_to_nearest_anchor` treats it as deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_step_behavior: Option<EditedStepBehavior>,
}

fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationWarning {
    pub severity: Severity,
    pub anchor_name: String,
    pub message: String,
    #[serde(default)]
    pub affected_sessions_estimate: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldCollectionInfo {
    pub field_name: String,
    pub display_name: String,
    #[serde(default)]
    pub affected_anchors: Vec<String>,
    pub reason: String,
    #[serde(default)]
    pub can_extract_from_conversation: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationSummary {
    pub total_anchors: u64,
    pub anchors_with_clean_graft: u64,
    pub anchors_with_gap_fill: u64,
    pub anchors_with_re_route: u64,
    /// Deleted steps, edited steps excluded (they are listed in `deleted_nodes` too).
    pub nodes_deleted: u64,
    /// Steps edited in place (`transformation_map.edited_steps`).
    #[serde(default)]
    pub steps_edited: u64,
    pub estimated_sessions_affected: u64,
    #[serde(default)]
    pub sessions_by_anchor: BTreeMap<String, u64>,
    #[serde(default)]
    pub warnings: Vec<MigrationWarning>,
    #[serde(default)]
    pub fields_to_collect: Vec<FieldCollectionInfo>,
    /// How fresh the session counts above are: every session change up to this
    /// time is counted (the store's session counts, read when the plan was
    /// generated; on DynamoDB they trail the sessions table's stream). Absent
    /// when no counts were read (offline plans) or none were ever recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_counted_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    Approved,
    Deploying,
    Deployed,
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
            PlanStatus::Rejected => "rejected",
            PlanStatus::Superseded => "superseded",
            PlanStatus::Expired => "expired",
        }
    }

    /// A live plan blocks another plan for the same version pair.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            PlanStatus::Rejected | PlanStatus::Superseded | PlanStatus::Expired
        )
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
    pub revision: u64,
    /// Present when the plan was too large to return whole: the anchors above are
    /// the first page, `GET /migration-plans/{id}/anchors` returns the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors_next_token: Option<String>,
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

// ---------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentResult {
    pub plan_id: Uuid,
    pub status: PlanStatus,
    pub sessions_marked: u64,
    pub sessions_by_anchor: BTreeMap<String, u64>,
    #[serde(default)]
    pub deployed_at: Option<DateTime<Utc>>,
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
}

// ---------------------------------------------------------------------------
// Reconcile
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationAction {
    Continue,
    Teleport,
    Collect,
    ExecuteAction,
    ExitScenario,
}

/// A value the runtime already knows: either a plain profile value or an
/// extraction candidate with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum KnownField {
    Candidate {
        value: serde_json::Value,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        confidence: Option<f64>,
    },
    Plain(serde_json::Value),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// Field name → a plain value (`34`) or an extraction candidate
    /// (`{"value": 34, "source": "llm", "confidence": 0.9}`).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = BTreeMap<String, serde_json::Value>, example = json!({"age": 34}))
    )]
    pub known_fields: BTreeMap<String, KnownField>,
    /// A preview: answer what reconcile would do to the session now, writing
    /// nothing (no session write, no audit event, no counter).
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconciliationResult {
    pub action: ReconciliationAction,
    #[serde(default)]
    pub target_step_id: Option<Uuid>,
    #[serde(default)]
    pub teleport_reason: Option<String>,
    #[serde(default)]
    pub collect_fields: Vec<String>,
    #[serde(default)]
    pub confirm_fields: Vec<String>,
    #[serde(default)]
    pub execute_action_ids: Vec<Uuid>,
    #[serde(default)]
    pub user_message: Option<String>,
    #[serde(default)]
    pub blocked_by_checkpoint: bool,
    #[serde(default)]
    pub checkpoint_warning: Option<String>,
    #[serde(default)]
    pub migration_scenario: Option<MigrationScenario>,
    #[serde(default)]
    pub anchor_hash: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl ReconciliationResult {
    pub fn continue_with(reason: impl Into<String>) -> Self {
        ReconciliationResult {
            action: ReconciliationAction::Continue,
            target_step_id: None,
            teleport_reason: None,
            collect_fields: Vec::new(),
            confirm_fields: Vec::new(),
            execute_action_ids: Vec::new(),
            user_message: None,
            blocked_by_checkpoint: false,
            checkpoint_warning: None,
            migration_scenario: None,
            anchor_hash: None,
            reason: Some(reason.into()),
        }
    }
}
