//! The operator summary of a plan: counters, warnings, fields to collect.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
