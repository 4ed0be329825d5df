//! Sessions, reconcile (request and result) and outcome reports.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::diff::MigrationScenario;

/// A value the runtime already knows for a field reconcile may ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KnownField {
    /// A value extracted from the conversation, with where it came from and how
    /// sure the extractor is: reconcile may ask the customer to confirm it
    /// (`confirm_fields`) rather than take it as given.
    Candidate {
        value: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
    },
    /// A profile value the runtime knows for sure (`34`, `"a@b.c"`).
    Plain(serde_json::Value),
}

impl From<serde_json::Value> for KnownField {
    fn from(value: serde_json::Value) -> Self {
        KnownField::Plain(value)
    }
}

impl Session {
    /// The session as `PUT /sessions/{id}` takes it back: the runtime's fields,
    /// without those the server owns (the flag, the pin, the revision, `updated_at`).
    pub fn to_input(&self) -> SessionInput {
        SessionInput {
            active_scenario_id: self.active_scenario_id,
            active_scenario_version: self.active_scenario_version,
            active_step_id: self.active_step_id,
            channel: self.channel.clone(),
            created_at: Some(self.created_at),
            customer_id: self.customer_id.clone(),
            scenario_checksum: self.scenario_checksum.clone(),
            session_id: None,
            step_history: self.step_history.clone(),
            tenant_id: None,
            variables: self.variables.clone(),
        }
    }
}

impl SessionInput {
    /// A session at `step` of `scenario` version `version`, with no history and no variables.
    pub fn at(channel: &str, scenario: Uuid, version: i64, step: Uuid) -> Self {
        SessionInput {
            active_scenario_id: scenario,
            active_scenario_version: version,
            active_step_id: step,
            channel: channel.to_owned(),
            created_at: None,
            customer_id: None,
            scenario_checksum: None,
            session_id: None,
            step_history: Vec::new(),
            tenant_id: None,
            variables: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingMigration {
    pub anchor_content_hash: String,
    pub from_step_id: Uuid,
    pub marked_at: DateTime<Utc>,
    pub migration_plan_id: Uuid,
    pub target_version: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileRequest {
    /// A preview: answer what reconcile would do to the session now, writing
    /// nothing (no session write, no audit event, no counter).
    #[serde(default)]
    pub dry_run: bool,
    /// Field name → a plain value (`34`) or an extraction candidate
    /// (`{"value": 34, "source": "llm", "confidence": 0.9}`).
    #[serde(default)]
    pub known_fields: BTreeMap<String, KnownField>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationAction {
    Continue,
    Teleport,
    Collect,
    ExecuteAction,
    ExitScenario,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationResult {
    pub action: ReconciliationAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_hash: Option<String>,
    #[serde(default)]
    pub blocked_by_checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_warning: Option<String>,
    #[serde(default)]
    pub collect_fields: Vec<String>,
    #[serde(default)]
    pub confirm_fields: Vec<String>,
    #[serde(default)]
    pub execute_action_ids: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_scenario: Option<MigrationScenario>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_step_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teleport_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub active_scenario_id: Uuid,
    pub active_scenario_version: i64,
    pub active_step_id: Uuid,
    pub channel: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_migration: Option<PendingMigration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_version: Option<i64>,
    /// +1 on every write by anyone (runtime, marking, reconcile); also the `ETag`.
    /// Items written before revisions existed read as 0.
    #[serde(default)]
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_checksum: Option<String>,
    pub session_id: String,
    #[serde(default)]
    pub step_history: Vec<StepVisit>,
    pub tenant_id: Uuid,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
}

/// What the runtime sends to `PUT /sessions/{session_id}`.
///
/// It accepts the representation `GET /sessions/{id}` returns, so a runtime can
/// read, modify and write back: `session_id` and `tenant_id` must then match the
/// path and the tenant header, and the product-owned and server-set fields
/// (`pending_migration`, `pinned_version`, `updated_at`, `revision`) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInput {
    pub active_scenario_id: Uuid,
    pub active_scenario_version: i64,
    pub active_step_id: Uuid,
    pub channel: String,
    /// Defaults to now on first write; lets the runtime import older sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_checksum: Option<String>,
    /// Must equal the path's session id when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default)]
    pub step_history: Vec<StepVisit>,
    /// Must equal the `X-Tenant-ID` header when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepVisit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_description: Option<String>,
    #[serde(default)]
    pub is_checkpoint: bool,
    pub step_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    pub visited_at: DateTime<Utc>,
}

/// The body of `POST /sessions/{id}/outcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRequest {
    /// `false`: the migrated session failed, in the runtime's judgement.
    pub ok: bool,
    /// Why (at most 500 characters; not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an outcome report did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeAnswer {
    pub session_id: String,
    /// Counted now; `false` when counted before or no migration in the window.
    pub counted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<Uuid>,
    pub detail: String,
}
