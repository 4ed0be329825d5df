//! The API's request and response types, with the JSON names of the OpenAPI
//! document (`migrations openapi`, or `GET /openapi.json`), one Rust type per
//! component schema of the same name (`HTTPValidationError` is
//! [`HttpValidationError`]).
//!
//! The client keeps its own types rather than the server's so that a runtime
//! does not compile the server. They do not reject fields they do not know,
//! so a newer server's additions do not break an older runtime. The e2e test
//! `client_contract` checks them against the document both ways: what the
//! client sends validates against the request schemas, and every field of
//! every live response survives a round trip through these types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// The forecast for the sessions at one V1 step: an anchor, an edited step or
/// a deleted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorForecast {
    /// The anchor whose policy applies (a deleted step's nearest anchor);
    /// absent for a deleted step without any anchor (its sessions exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_content_hash: Option<String>,
    /// The name of the V1 step the sessions sit at.
    pub anchor_name: String,
    /// Field → sessions that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
    pub kind: StratumKind,
    pub outcomes: ForecastOutcomes,
    pub sessions: ForecastCount,
    /// Where teleports land: V2 step id → sessions.
    pub targets: BTreeMap<Uuid, ForecastCount>,
    /// The step the sessions sit at (of `version`).
    pub v1_step_id: Uuid,
    /// The version the sessions are on: the plan's from-version, or an
    /// earlier one (`kind: earlier_version`).
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorMigrationPolicy {
    pub anchor_content_hash: String,
    pub anchor_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_step_behavior: Option<EditedStepBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_scenario: Option<MigrationScenario>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_filter: Option<ScopeFilter>,
    #[serde(default)]
    pub update_downstream: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorPage {
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    pub anchors: Vec<AnchorTransformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovePlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
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

/// One applied migration (the store's `AuditEvent`, as `GET …/events` returns
/// it); a test of the OpenAPI document (`audit_event_schema_matches_the_store_type`) keeps the two in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub action: ReconciliationAction,
    pub at: DateTime<Utc>,
    pub blocked_by_checkpoint: bool,
    pub event_id: Uuid,
    pub fields_asked: Vec<String>,
    /// field → where its value came from (`known_fields`, `extraction`, `variables`).
    pub fields_filled: BTreeMap<String, String>,
    pub from_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_scenario: Option<MigrationScenario>,
    pub plan_id: Uuid,
    pub scenario_id: Uuid,
    pub session_id: String,
    pub step_after: Uuid,
    pub step_before: Uuid,
    pub tenant_id: Uuid,
    pub to_version: i64,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
    pub plan_id: Uuid,
    pub sessions_by_anchor: BTreeMap<String, u64>,
    pub sessions_marked: u64,
    pub status: PlanStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The share of sessions the rollout reaches, 1–100.
    #[serde(default = "all_sessions")]
    pub percent: u8,
    /// Flags a withdrawal cleared before reconcile applied them.
    #[serde(default)]
    pub flags_withdrawn: u64,
    pub checkpoint_blocks: u64,
    /// Applied migrations that ended the conversation (`exit_scenario`).
    #[serde(default)]
    pub migrations_exited: u64,
    /// Outcomes the runtime reported for sessions this plan migrated, and of
    /// those the failed ones.
    #[serde(default)]
    pub reported_outcomes: u64,
    #[serde(default)]
    pub reported_failures: u64,
    /// The rollout guard given at deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
    /// While `halted`: the threshold crossed, with its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_migration_at: Option<DateTime<Utc>>,
    /// When marking last made progress (a page recorded, a chain started or
    /// resumed); a `deploying` plan whose progress is older than the lease is
    /// resumed by the next deploy call or sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_at: Option<DateTime<Utc>>,
    /// Migrations applied to sessions this deploy marked: never more than
    /// `sessions_marked`.
    pub migrations_applied: u64,
    /// Migrations applied to sessions that carried no flag: late arrivals, sessions
    /// recorded after the deploy, or reconciled before marking reached them.
    #[serde(default)]
    pub migrations_applied_unflagged: u64,
    pub migrations_by_scenario: MigrationsByScenario,
    pub migrations_pending: u64,
    /// Marking pages that exhausted their deliveries (sent to the dead-letter
    /// queue). While it is non-zero and the plan is `deploying`, marking waits
    /// for those pages to be re-driven; it never decreases (a history count).
    #[serde(default)]
    pub pages_failed: u64,
    pub plan_id: Uuid,
    /// Marking chains resumed after they stalled (a process died, a store error).
    #[serde(default)]
    pub resumptions: u64,
    pub sessions_marked: u64,
    pub status: PlanStatus,
}

/// Which version a plan diagram draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagramSide {
    V1,
    V2,
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

/// How sessions waiting at an edited step migrate (a policy choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditedStepBehavior {
    Stay,
    RelocateToNearestAnchor,
}

/// `{"detail": "Migration plan 3fa85f64-… not found"}`: every error except a
/// validation error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub detail: String,
}

/// A count estimated from a sample, with a 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate: u64,
    pub high: u64,
    pub low: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<AuditEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldCollectionInfo {
    #[serde(default)]
    pub affected_anchors: Vec<String>,
    #[serde(default)]
    pub can_extract_from_conversation: bool,
    pub display_name: String,
    pub field_name: String,
    pub reason: String,
}

/// A forecast count: a plain number when every session was decided, or an
/// estimate with its 95% interval when the sessions were sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ForecastCount {
    Exact(u64),
    Estimated(Estimate),
}

/// What reconcile will answer, counted by action. `continue` includes the
/// sessions counted apart in `excluded_by_scope` and `pinned`;
/// `blocked_by_checkpoint` counts results carrying a checkpoint block, whatever
/// their action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOutcomes {
    pub blocked_by_checkpoint: ForecastCount,
    pub collect: ForecastCount,
    pub r#continue: ForecastCount,
    /// Left on their version by the policy's scope filter (re-evaluated on
    /// every later call: they may still migrate).
    pub excluded_by_scope: ForecastCount,
    pub execute_action: ForecastCount,
    pub exit_scenario: ForecastCount,
    /// Kept on their version for good (`update_downstream: false`, or pinned
    /// by an earlier plan).
    pub pinned: ForecastCount,
    pub teleport: ForecastCount,
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
pub struct GenerateMigrationPlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub new_scenario: ScenarioInput,
}

/// A request validation error, in FastAPI's shape with pydantic v2 error types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationError>,
}

/// `GET /health`: the process answers and the store is reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The store's error when it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `ok`, or `unavailable` (with 503) when the store did not answer.
    pub status: String,
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

/// One part of a validation error's location: a name or an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocPart {
    Name(String),
    Index(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub anchor_policies: BTreeMap<String, AnchorMigrationPolicy>,
    /// Present when the plan was too large to return whole: the anchors above are
    /// the first page, `GET /migration-plans/{id}/anchors` returns the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors_next_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub from_version: i64,
    pub id: Uuid,
    /// The status a paused or halted plan returns to when resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<PlanStatus>,
    /// The rollout guard given at deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
    /// While `halted`: the threshold crossed, with its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// The share of sessions the rollout reaches, 1–100 (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Marking passes after the deploy's: one per ramp.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollout_pass: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub revision: u64,
    pub scenario_checksum_v1: String,
    pub scenario_checksum_v2: String,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub status: PlanStatus,
    pub summary: MigrationSummary,
    pub tenant_id: Uuid,
    pub to_version: i64,
    pub transformation_map: TransformationMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlanSummaryItem {
    pub created_at: DateTime<Utc>,
    pub estimated_sessions_affected: u64,
    pub from_version: i64,
    pub id: Uuid,
    pub scenario_id: Uuid,
    pub scenario_name: String,
    pub status: PlanStatus,
    pub to_version: i64,
    pub total_anchors: u64,
    pub warning_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationScenario {
    CleanGraft,
    GapFill,
    ReRoute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationSummary {
    pub anchors_with_clean_graft: u64,
    pub anchors_with_gap_fill: u64,
    pub anchors_with_re_route: u64,
    pub estimated_sessions_affected: u64,
    #[serde(default)]
    pub fields_to_collect: Vec<FieldCollectionInfo>,
    /// Deleted steps, edited steps excluded (they are listed in `deleted_nodes` too).
    pub nodes_deleted: u64,
    #[serde(default)]
    pub sessions_by_anchor: BTreeMap<String, u64>,
    /// How fresh the session counts above are: every session change up to this
    /// time is counted (the store's session counts, read when the plan was
    /// generated; on DynamoDB they trail the sessions table's stream). Absent
    /// when no counts were read (offline plans) or none were ever recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_counted_at: Option<DateTime<Utc>>,
    /// Steps edited in place (`transformation_map.edited_steps`).
    #[serde(default)]
    pub steps_edited: u64,
    pub total_anchors: u64,
    #[serde(default)]
    pub warnings: Vec<MigrationWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationWarning {
    #[serde(default)]
    pub affected_sessions_estimate: u64,
    pub anchor_name: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationsByScenario {
    pub clean_graft: u64,
    pub gap_fill: u64,
    pub re_route: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFork {
    #[serde(default)]
    pub branches: Vec<ForkBranch>,
    pub fork_node_id: Uuid,
    pub fork_node_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingMigration {
    pub anchor_content_hash: String,
    pub from_step_id: Uuid,
    pub marked_at: DateTime<Utc>,
    pub migration_plan_id: Uuid,
    pub target_version: i64,
}

/// `GET /migration-plans/{plan_id}/forecast`: what deploying the plan now and
/// reconciling every session once would do, per action and per anchor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanForecast {
    pub by_anchor: Vec<AnchorForecast>,
    pub computed_at: DateTime<Utc>,
    /// Every session was decided (counts are numbers); false: sampled
    /// (counts are `{estimate, low, high}`).
    pub exact: bool,
    /// Field → sessions of the whole plan that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
    pub outcomes: ForecastOutcomes,
    pub plan_id: Uuid,
    /// The plan revision (its policies) the forecast reflects.
    pub plan_revision: u64,
    /// Sessions actually decided (all of them when exact).
    pub sample_size: u64,
    /// Sessions at the plan's from-version, and at earlier versions still to
    /// migrate through the chain: decided, or counted when sampled.
    pub sessions_considered: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub plans: Vec<MigrationPlanSummaryItem>,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    Approved,
    Deploying,
    Deployed,
    Paused,
    Halted,
    Withdrawing,
    Withdrawn,
    Rejected,
    Superseded,
    Expired,
}

/// Thresholds over a plan's applied migrations that halt its rollout once
/// `min_sessions` migrations have been applied (rates are fractions, 0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutGuard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exit_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_checkpoint_block_rate: Option<f64>,
    /// Most migrated sessions the runtime may report failed, as a fraction of
    /// the applied migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reported_failure_rate: Option<f64>,
    #[serde(default = "default_min_sessions")]
    pub min_sessions: u64,
}

fn default_min_sessions() -> u64 {
    50
}

/// The optional body of `POST /migration-plans/{id}/deploy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The share of sessions to migrate, 1–100 (default 100); a plan deployed
    /// at a smaller share ramps to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<RolloutGuard>,
}

fn all_sessions() -> u8 {
    100
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectPlanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
}

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeFilter {
    #[serde(default)]
    pub custom_conditions: Vec<String>,
    #[serde(default)]
    pub exclude_channels: Vec<String>,
    #[serde(default)]
    pub exclude_current_nodes: Vec<String>,
    #[serde(default)]
    pub include_channels: Vec<String>,
    #[serde(default)]
    pub include_current_nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_age_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_session_age_days: Option<i64>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
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

/// What kind of V1 step a forecast stratum is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StratumKind {
    Anchor,
    EditedStep,
    DeletedStep,
    EarlierVersion,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatePoliciesRequest {
    pub policies: BTreeMap<String, AnchorMigrationPolicy>,
}

/// One entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Where: `["body", "steps", 3, "id"]`, `["query", "limit"]`, `["header", "X-Tenant-ID"]`.
    pub loc: Vec<LocPart>,
    pub msg: String,
    /// A pydantic v2 error type (`missing`, `uuid_parsing`, `extra_forbidden`,
    /// `json_invalid`, `int_parsing`, `model_type`, …) or, for checks of this
    /// product, `value_error…` (`value_error.unknown_step`, `value_error.cel`, …).
    pub r#type: String,
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
