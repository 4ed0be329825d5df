//! Anchor migration policies: which sessions an anchor migrates, and how.

use serde::{Deserialize, Serialize};

use super::transformation::{EditedStepBehavior, MigrationScenario};

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
