//! The reconcile request a runtime sends and the result it gets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::transformation::MigrationScenario;

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
