//! Sessions as the store keeps them and the runtime writes them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
