//! Scenario definitions: steps and transitions as a client submits them, and stored versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// A rollout that reaches only part of a scenario's sessions: its plan, the
/// version it migrates to and the share it reaches. Recorded with the
/// scenario's current version (still the plan's from-version) until the
/// rollout reaches 100%, when the to-version becomes current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRollout {
    pub plan_id: Uuid,
    pub to_version: i64,
    /// 1–99.
    pub percent: u8,
}

impl PartialRollout {
    /// Whether the rollout reaches the session (its stable cohort bucket is
    /// below `percent × 100`): a ramp only adds sessions, never drops one.
    pub fn reaches(&self, session_id: &str) -> bool {
        crate::cohort::in_cohort(self.plan_id, session_id, self.percent)
    }
}
