//! The transformation map: anchors, the changes around each, edited, deleted and new steps.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
