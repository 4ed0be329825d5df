//! Scenario definitions and their stored versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A scenario definition as a client submits it (one version, without ids that
/// the server owns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub entry_step_id: Uuid,
    pub name: String,
    pub steps: Vec<StepInput>,
    pub version: i64,
}

/// A stored scenario version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioVersion {
    pub checksum: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub entry_step_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub steps: Vec<StepInput>,
    pub tenant_id: Uuid,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_description: Option<String>,
    #[serde(default)]
    pub collects_profile_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub id: Uuid,
    #[serde(default)]
    pub is_checkpoint: bool,
    #[serde(default)]
    pub is_entry: bool,
    #[serde(default)]
    pub is_required_action: bool,
    #[serde(default)]
    pub is_terminal: bool,
    pub name: String,
    #[serde(default)]
    pub performs_action: bool,
    #[serde(default)]
    pub rule_ids: Vec<Uuid>,
    #[serde(default)]
    pub transitions: Vec<TransitionInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionInput {
    #[serde(default)]
    pub condition_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_text: Option<String>,
    #[serde(default)]
    pub priority: i64,
    pub to_step_id: Uuid,
}
