//! The transformation map of a plan: anchors, edited, deleted and inserted steps, region changes, and how each migrates.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorTransformation {
    pub anchor_content_hash: String,
    pub anchor_name: String,
    pub anchor_node_id_v1: Uuid,
    pub anchor_node_id_v2: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream_changes: Option<RegionChanges>,
    pub migration_scenario: MigrationScenario,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_changes: Option<RegionChanges>,
}

/// One changed attribute of an edited step, with its value in each version
/// (normalised as the content hash reads it: absent descriptions are `""`, rule
/// ids and fields sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub after: serde_json::Value,
    pub attribute: StepAttribute,
    pub before: serde_json::Value,
}

/// A V1 step without a content partner. An edited step is listed here too (with
/// `edited: true`), for clients that only know deleted nodes: its
/// `nearest_anchor_hash` is the edited step's policy key and
/// `nearest_anchor_id_v2` its own (unchanged) id, so its sessions are marked and
/// migrated onto the edited step itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedNode {
    /// Not deleted: edited in place (see `TransformationMap::edited_steps`).
    #[serde(default)]
    pub edited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_anchor_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_anchor_id_v2: Option<Uuid>,
    pub node_id_v1: Uuid,
    pub node_name: String,
}

/// An edited step as it appears in the region of another anchor (or edited step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedNode {
    /// Fields the new version collects there and the old one did not: sessions
    /// that passed the step before the edit never gave them (gap fill).
    #[serde(default)]
    pub added_fields: Vec<String>,
    #[serde(default)]
    pub changed: Vec<StepAttribute>,
    #[serde(default)]
    pub is_checkpoint: bool,
    /// The edit makes it a required action and the old step performed no action:
    /// sessions that passed it before the edit owe it (gap fill).
    #[serde(default)]
    pub new_required_action: bool,
    /// The same in both versions.
    pub node_id: Uuid,
    /// The name in the new version.
    pub node_name: String,
}

/// A V1 step and a V2 step with the same id and different content, neither of
/// them paired by content: the same step, edited in place.
///
/// It migrates like an anchor: the flattened fields are those of an
/// [`AnchorTransformation`] whose `anchor_content_hash` is the edited step's
/// *policy key* (its V2 content hash when no other step has that content, else a
/// synthetic hash), `anchor_name` its V2 name, both node ids its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedStep {
    #[serde(flatten)]
    pub anchor: AnchorTransformation,
    #[serde(default)]
    pub changes: Vec<AttributeChange>,
    pub content_hash_v1: String,
    pub content_hash_v2: String,
    /// Where `relocate_to_nearest_anchor` sends its sessions: the nearest anchor as
    /// for a deleted step (edited steps are not candidates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_anchor_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_anchor_id_v2: Option<Uuid>,
    pub node_name_v1: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkBranch {
    #[serde(default)]
    pub condition_fields: Vec<String>,
    pub condition_text: String,
    pub target_step_id: Uuid,
    pub target_step_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertedNode {
    #[serde(default)]
    pub collects_fields: Vec<String>,
    #[serde(default)]
    pub has_rules: bool,
    #[serde(default)]
    pub is_checkpoint: bool,
    #[serde(default)]
    pub is_required_action: bool,
    pub node_id: Uuid,
    pub node_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationScenario {
    CleanGraft,
    GapFill,
    ReRoute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFork {
    #[serde(default)]
    pub branches: Vec<ForkBranch>,
    pub fork_node_id: Uuid,
    pub fork_node_name: String,
}

/// Changes in one region (upstream or downstream) around an anchor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionChanges {
    /// Steps of the region edited in place (same id, other content): neither
    /// inserted nor removed. Absent from plans made before edits were recognised.
    #[serde(default)]
    pub edited_nodes: Vec<EditedNode>,
    #[serde(default)]
    pub inserted_nodes: Vec<InsertedNode>,
    #[serde(default)]
    pub modified_transitions: Vec<TransitionChange>,
    #[serde(default)]
    pub new_forks: Vec<NewFork>,
    #[serde(default)]
    pub removed_node_ids: Vec<Uuid>,
}

/// A step attribute an edit in place can change: the fields of the content hash,
/// and `is_required_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransformationMap {
    #[serde(default)]
    pub anchors: Vec<AnchorTransformation>,
    #[serde(default)]
    pub deleted_nodes: Vec<DeletedNode>,
    /// Steps edited in place, in V2 flow order. Absent from older plans.
    #[serde(default)]
    pub edited_steps: Vec<EditedStep>,
    #[serde(default)]
    pub new_node_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionChange {
    pub change_type: TransitionChangeType,
    pub from_step_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_step_id_v1: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_step_id_v2: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionChangeType {
    Added,
    Removed,
    Modified,
}
